//! What [`choose`] picks for every convolution of `bench/suite.json` and
//! every pass, pinned: a rule that changes shows here, beside the
//! measurement it needs.

use super::*;
use crate::ops::Conv2dParams;
use serde_json::Value;

/// The suite's convolutions as validated geometries, by name.
fn suite() -> Vec<(String, ConvGeometry)> {
    let text = include_str!("../../../../../bench/suite.json");
    let suite: Value = serde_json::from_str(text).expect("bench/suite.json is JSON");
    let size = |c: &Value, key: &str| c[key].as_u64().expect("a size") as usize;
    let pair = |c: &Value, key: &str| match &c[key] {
        Value::Array(a) => (
            a[0].as_u64().expect("a size") as usize,
            a[1].as_u64().expect("a size") as usize,
        ),
        v => {
            let s = v.as_u64().expect("a size") as usize;
            (s, s)
        }
    };
    let cases = suite["conv2d"].as_array().expect("a conv2d list");
    cases
        .iter()
        .map(|c| {
            let (kh, kw) = pair(c, "k");
            let groups = size(c, "groups");
            let p = Conv2dParams::new()
                .stride(pair(c, "stride"))
                .padding(pair(c, "padding"))
                .dilation(pair(c, "dilation"))
                .groups(groups);
            let input = [size(c, "n"), size(c, "cin"), size(c, "h"), size(c, "w")];
            let weight = [size(c, "cout"), size(c, "cin") / groups, kh, kw];
            let plan = crate::ops::conv2d::plan(&input, &weight, None, &p).expect("a valid case");
            (c["name"].as_str().expect("a name").to_string(), plan.geom)
        })
        .collect()
}

/// A weight of `g`'s shape whose filters are not outer products.
fn weight(g: &ConvGeometry) -> Vec<f32> {
    let len = g.c_out * g.cin_g() * g.kh * g.kw;
    (0..len).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect()
}

#[test]
fn suite_choices_are_pinned() {
    use ConvAlgo::*;
    let wide = crate::kernels::ukernel::menu().lanes == 16;
    // (name, forward, input gradient, weight gradient)
    // Point-major only with 16-lane vectors (AVX-512): its blocks of 64
    // tiles run a wider tile kernel than the panel-major ones there.
    let deep = if wide { WinogradPointMajor } else { Winograd };
    let pinned: [(&str, [ConvAlgo; 3]); 16] = [
        ("d2l_edge_1x2", [Direct, Direct, Direct]),
        ("image_3x3_1080p", [Direct, Direct, Direct]),
        ("image_31x31", [Fft, Fft, Fft]),
        ("lenet_c1", [ImplicitGemm, Im2col, Im2col]),
        ("lenet_c2", [ImplicitGemmLanes, ImplicitGemm, ImplicitGemm]),
        (
            "resnet_stem_7x7_s2",
            [WinogradStride2F3x4, Im2col, ImplicitGemm],
        ),
        ("resnet_3x3_64", [Winograd, Winograd, Winograd]),
        ("resnet_3x3_128", [Winograd, Winograd, Winograd]),
        ("resnet_3x3_256", [deep, deep, Winograd]),
        ("resnet_3x3_512", [Winograd, Winograd, Winograd]),
        ("resnet_3x3_s2_128", [Im2col, Im2col, ImplicitGemm]),
        ("resnet_1x1_s2", [ImplicitGemm, Im2col, Im2col]),
        ("bottleneck_1x1", [ImplicitGemm, Im2col, ImplicitGemm]),
        ("mobilenet_dw_3x3", [Direct, Direct, Direct]),
        ("dilated_3x3_d2", [Winograd, Winograd, Winograd]),
        (
            "audio_conv1d_k9",
            [ImplicitGemm, ImplicitGemm, ImplicitGemm],
        ),
    ];
    let mut got = Vec::new();
    for (name, g) in suite() {
        let w = weight(&g);
        let values = Values::of_weight(&w);
        let picks = ConvPass::ALL.map(|pass| choose(&g, pass, &values));
        for (pass, &algo) in ConvPass::ALL.iter().zip(&picks) {
            assert_eq!(check(algo, &g, *pass, &values), Ok(()), "{name} {pass:?}");
        }
        got.push((name, picks));
    }
    for (name, want) in pinned {
        let found = got.iter().find(|(n, _)| n == name).expect("a suite case");
        assert_eq!(found.1, want, "{name}");
    }
    assert_eq!(got.len(), pinned.len(), "every suite case is pinned");
}

//! Receptive fields of a stack of convolution and pooling layers (*Dive into
//! Deep Learning* §6.2.6): for each layer, the output size, how many input
//! pixels one output sees (the receptive field), how far apart in the input
//! two neighbouring outputs are (the jump, or effective stride), and where
//! the first output's field is centred.
//!
//! Sizes follow the ops exactly: [`conv_out_len`] for convolutions,
//! [`pool_out_len`] for pooling (with `ceil_mode`).
//!
//! ```
//! use convlab::receptive_field::{parse_spec, receptive_fields};
//! let layers = parse_spec("conv3, conv3")?;
//! let rows = receptive_fields(&layers, (8, 8).into())?;
//! assert_eq!(rows[1].out, (4, 4).into());
//! assert_eq!(rows[1].rf, (5, 5).into());
//! # Ok::<(), convlab::Error>(())
//! ```
//!
//! # The recurrence
//! With `r`, `j`, `c` the field, jump and first centre of a layer's input
//! (`1, 1, 0` for the image, coordinates in input pixels, pixel `i`
//! centred at `i`), a layer of kernel `k`, dilation `d`, stride `s` and
//! padding `p` before the first element gives
//! `r' = r + d(k-1)·j`, `j' = j·s`, `c' = c + (d(k-1)/2 - p)·j`.
//! A centre outside `0..size` means the first window is partly padding.

use crate::error::{Error, Result};
use crate::shape::{conv_out_len, effective_kernel, pool_out_len, Padding, Pair};

/// What a layer of a spec does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// `conv`: a convolution (any channels; only the geometry matters).
    Conv,
    /// `maxpool`: max pooling (stride defaults to the kernel size).
    MaxPool,
    /// `avgpool`: average pooling (stride defaults to the kernel size).
    AvgPool,
    /// An elementwise layer (`relu`, `sigmoid`, `tanh`, `bn`): sizes and
    /// fields pass through unchanged.
    Pointwise,
}

/// One parsed layer of a spec such as `conv3 s2 p1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// The layer as written in the spec (trimmed), for messages and tables.
    pub text: String,
    /// What the layer is.
    pub kind: LayerKind,
    /// Kernel `(kh, kw)`; `1` for pointwise layers.
    pub kernel: Pair,
    /// Stride; conv default 1, pooling default the kernel size.
    pub stride: Pair,
    /// Padding; `same` and explicit sides are resolved like `conv2d`'s.
    pub padding: Padding,
    /// Dilation (default 1; not accepted for `avgpool`, as in PyTorch).
    pub dilation: Pair,
    /// Pooling's `ceil_mode` (the `ceil` option).
    pub ceil_mode: bool,
}

/// One row of [`receptive_fields`]: a layer and its geometry.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerField {
    /// The layer.
    pub layer: LayerSpec,
    /// Output size `(oh, ow)`.
    pub out: Pair,
    /// Receptive field in input pixels `(rh, rw)`.
    pub rf: Pair,
    /// Distance in input pixels between neighbouring outputs `(jh, jw)`.
    pub jump: Pair,
    /// Centre `(row, column)` of the first output's field, in input pixel
    /// coordinates (pixel `i` is centred at `i`; halves for even fields,
    /// negative when the field starts in the padding).
    pub centre: (f64, f64),
}

fn bad(layer: usize, text: &str, msg: impl std::fmt::Display) -> Error {
    Error::param(
        "receptive_field",
        "spec",
        format!("layer {} '{}': {msg}", layer + 1, text.escape_debug()),
    )
}

/// `N` or `HxW` as a pair of positive numbers (`allow_zero` for padding).
fn pair(s: &str, allow_zero: bool) -> Option<Pair> {
    let num = |t: &str| -> Option<usize> {
        let v: usize = t.parse().ok()?;
        (allow_zero || v > 0).then_some(v)
    };
    match s.split_once('x') {
        Some((h, w)) => Some(Pair(num(h)?, num(w)?)),
        None => num(s).map(|v| Pair(v, v)),
    }
}

/// Parses a comma-separated layer stack: `conv3, conv3, maxpool2, conv3 s2
/// p1, conv5 d2`.
///
/// Each layer is a head — `convK`, `maxpoolK`, `avgpoolK` (K is `N` or
/// `HxW`), or a pointwise `relu`, `sigmoid`, `tanh`, `bn` — followed by
/// options separated by spaces: `sN` stride, `pN` padding (`psame`,
/// `pvalid`, or `N`/`HxW` on both sides), `dN` dilation, `ceil` (pooling).
///
/// # Errors
/// [`Error::Param`] naming the layer (1-based) and what is wrong: an unknown
/// head or option, a zero kernel, stride or dilation, a repeated option,
/// `same` padding with a stride, pooling padding above half the kernel
/// (PyTorch's rule), dilation on `avgpool`, or an empty spec.
pub fn parse_spec(spec: &str) -> Result<Vec<LayerSpec>> {
    let mut layers = Vec::new();
    for (i, text) in spec.split(',').map(str::trim).enumerate() {
        if text.is_empty() {
            return Err(bad(
                i,
                text,
                "is empty (two commas in a row, or a trailing comma?)",
            ));
        }
        let mut tokens = text.split_whitespace();
        let head = tokens.next().unwrap_or("").to_ascii_lowercase();
        let (kind, size) = if let Some(k) = head.strip_prefix("maxpool") {
            (LayerKind::MaxPool, k)
        } else if let Some(k) = head.strip_prefix("avgpool") {
            (LayerKind::AvgPool, k)
        } else if let Some(k) = head.strip_prefix("conv") {
            (LayerKind::Conv, k)
        } else if matches!(head.as_str(), "relu" | "sigmoid" | "tanh" | "bn") {
            (LayerKind::Pointwise, "1")
        } else {
            return Err(bad(
                i,
                text,
                format!("'{head}' is not convK, maxpoolK, avgpoolK, relu, sigmoid, tanh or bn"),
            ));
        };
        let kernel = pair(size, false).ok_or_else(|| {
            bad(
                i,
                text,
                format!("kernel size '{size}' is not a positive N or HxW (e.g. {head}3)"),
            )
        })?;
        let pooling = matches!(kind, LayerKind::MaxPool | LayerKind::AvgPool);
        let (mut stride, mut padding, mut dilation, mut ceil) = (None, None, None, false);
        for tok in tokens {
            let t = tok.to_ascii_lowercase();
            let (name, slot_taken) = match t.chars().next() {
                Some('s') => ("stride", stride.is_some()),
                Some('p') => ("padding", padding.is_some()),
                Some('d') => ("dilation", dilation.is_some()),
                _ if t == "ceil" => ("ceil", ceil),
                _ => ("", false),
            };
            if kind == LayerKind::Pointwise || name.is_empty() {
                return Err(bad(
                    i,
                    text,
                    format!("unknown option '{tok}' (options: sN, pN, psame, dN, ceil)"),
                ));
            }
            if slot_taken {
                return Err(bad(i, text, format!("{name} is given twice")));
            }
            let value = &t[1..];
            let invalid = || {
                bad(
                    i,
                    text,
                    format!(
                        "{name} '{tok}' is not valid (write {}N or {}HxW)",
                        &t[..1],
                        &t[..1]
                    ),
                )
            };
            match name {
                "stride" => stride = Some(pair(value, false).ok_or_else(invalid)?),
                "dilation" => dilation = Some(pair(value, false).ok_or_else(invalid)?),
                "padding" => {
                    padding = Some(match value {
                        "same" => Padding::Same,
                        "valid" => Padding::Valid,
                        v => pair(v, true).ok_or_else(invalid)?.into(),
                    })
                }
                _ => {
                    if !pooling {
                        return Err(bad(i, text, "ceil applies to pooling layers only"));
                    }
                    ceil = true;
                }
            }
        }
        let stride = stride.unwrap_or(if pooling { kernel } else { Pair(1, 1) });
        let mut padding = padding.unwrap_or(Padding::Valid);
        if kind == LayerKind::AvgPool && dilation.is_some() {
            return Err(bad(i, text, "avgpool has no dilation (as in PyTorch)"));
        }
        if pooling {
            // Pooling pads both sides alike and has no 'same'.
            let (top, left) = match padding {
                Padding::Valid => (0, 0),
                Padding::Sides { top, left, .. } => (top, left),
                Padding::Same => {
                    return Err(bad(i, text, "pooling takes a number as padding, not same"))
                }
            };
            if top > kernel.0 / 2 || left > kernel.1 / 2 {
                return Err(bad(
                    i,
                    text,
                    format!(
                        "pooling padding {} must be at most half the kernel {}",
                        Pair(top, left),
                        kernel
                    ),
                ));
            }
            padding = Pair(top, left).into();
        }
        if padding == Padding::Same && stride != Pair(1, 1) {
            return Err(bad(i, text, "padding same needs stride 1 (as in PyTorch)"));
        }
        layers.push(LayerSpec {
            text: text.to_string(),
            kind,
            kernel,
            stride,
            padding,
            dilation: dilation.unwrap_or(Pair(1, 1)),
            ceil_mode: ceil,
        });
    }
    Ok(layers)
}

/// Output size, receptive field, jump and first centre after each of
/// `layers`, for an `input` of `(h, w)` pixels.
///
/// # Errors
/// [`Error::Shape`] naming the layer when its window no longer fits its
/// input (the size rule of the op says the output would be empty);
/// [`Error::TooLarge`] when a field or jump overflows.
pub fn receptive_fields(layers: &[LayerSpec], input: Pair) -> Result<Vec<LayerField>> {
    const OP: &str = "receptive_field";
    let mut size = input;
    let (mut rf, mut jump, mut centre) = (Pair(1, 1), Pair(1, 1), (0.0f64, 0.0f64));
    if input.0 == 0 || input.1 == 0 {
        return Err(Error::param(
            OP,
            "input",
            format!("{input} is invalid: must be at least 1"),
        ));
    }
    let mut rows = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let [pt, pb, pl, pr] = l.padding.resolve(OP, l.kernel, l.dilation, l.stride)?;
        let no_fit = |e: Error| {
            Error::shape(
                OP,
                format!(
                    "layer {} '{}' does not fit its {}x{} input: {}",
                    i + 1,
                    l.text.escape_debug(),
                    size.0,
                    size.1,
                    match e {
                        Error::Shape { msg, .. } => msg,
                        other => other.to_string(),
                    }
                ),
            )
        };
        let mut out = [0usize; 2];
        for (a, (axis, len, k, s, p0, p1, d)) in [
            (
                "height",
                size.0,
                l.kernel.0,
                l.stride.0,
                pt,
                pb,
                l.dilation.0,
            ),
            (
                "width",
                size.1,
                l.kernel.1,
                l.stride.1,
                pl,
                pr,
                l.dilation.1,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            out[a] = match l.kind {
                LayerKind::Conv | LayerKind::Pointwise => {
                    conv_out_len(OP, axis, len, k, s, p0, p1, d).map_err(no_fit)?
                }
                LayerKind::MaxPool | LayerKind::AvgPool => {
                    pool_out_len(OP, axis, len, k, s, p0, d, l.ceil_mode).map_err(no_fit)?
                }
            };
        }
        let overflow =
            || Error::too_large(OP, format!("layer {}: receptive field overflows", i + 1));
        let step = |r: usize, j: usize, c: f64, k: usize, s: usize, p: usize, d: usize| {
            let span = effective_kernel(OP, k, d)? - 1;
            let r2 = span
                .checked_mul(j)
                .and_then(|v| v.checked_add(r))
                .ok_or_else(overflow)?;
            let j2 = j.checked_mul(s).ok_or_else(overflow)?;
            let c2 = c + (span as f64 / 2.0 - p as f64) * j as f64;
            Ok::<_, Error>((r2, j2, c2))
        };
        let (rh, jh, ch) = step(
            rf.0,
            jump.0,
            centre.0,
            l.kernel.0,
            l.stride.0,
            pt,
            l.dilation.0,
        )?;
        let (rw, jw, cw) = step(
            rf.1,
            jump.1,
            centre.1,
            l.kernel.1,
            l.stride.1,
            pl,
            l.dilation.1,
        )?;
        size = Pair(out[0], out[1]);
        rf = Pair(rh, rw);
        jump = Pair(jh, jw);
        centre = (ch, cw);
        rows.push(LayerField {
            layer: l.clone(),
            out: size,
            rf,
            jump,
            centre,
        });
    }
    Ok(rows)
}

/// One row of [`receptive_fields_nd`]: a layer and its geometry on each
/// of the input's axes (outermost first).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerFieldNd {
    /// The layer as written in the spec.
    pub text: String,
    /// Output size per axis.
    pub out: Vec<usize>,
    /// Receptive field per axis, in input pixels.
    pub rf: Vec<usize>,
    /// Distance between neighbouring outputs per axis, in input pixels.
    pub jump: Vec<usize>,
    /// Centre of the first output's field per axis (see [`LayerField`]).
    pub centre: Vec<f64>,
}

/// The spec with every size token (`3`, `3x5`, `3x5x5`) replaced by its
/// value on axis `axis` of `rank`: a one-number size stands for every
/// axis; otherwise it must have `rank` parts.
fn spec_on_axis(spec: &str, axis: usize, rank: usize) -> Result<String> {
    let mut layers = Vec::new();
    for (i, text) in spec.split(',').map(str::trim).enumerate() {
        let mut words = Vec::new();
        for (w, word) in text.split_whitespace().enumerate() {
            // The size starts after the head's name (conv, maxpool, ...) or
            // an option's letter (s, p, d).
            let split = if w == 0 {
                word.find(|c: char| c.is_ascii_digit())
                    .unwrap_or(word.len())
            } else {
                1.min(word.len())
            };
            let (name, value) = word.split_at(split);
            let parts: Vec<&str> = value.split(['x', 'X']).collect();
            let numeric = !value.is_empty() && parts.iter().all(|p| p.parse::<usize>().is_ok());
            let one = match parts.len() {
                _ if !numeric => value,
                1 => value,
                n if n == rank => parts[axis],
                n => {
                    return Err(bad(
                        i,
                        text,
                        format!("'{word}' has {n} sizes; a {rank}-D input takes 1 or {rank}"),
                    ))
                }
            };
            words.push(format!("{name}{one}"));
        }
        layers.push(words.join(" "));
    }
    Ok(layers.join(", "))
}

/// [`receptive_fields`] for an input of any rank (`[L]`, `[H, W]` or `[D,
/// H, W]`): sizes in the spec are one number for every axis or one per
/// axis (`conv3x5x5 s1x2x2`). Each axis is computed on its own (the rules
/// are separable), from the same spec.
///
/// ```
/// use convlab::receptive_field::receptive_fields_nd;
/// let rows = receptive_fields_nd("conv9 p4, maxpool2, conv9 p4", &[16000])?;
/// assert_eq!((rows[2].out.clone(), rows[2].rf.clone()), (vec![8000], vec![26]));
/// let rows = receptive_fields_nd("conv3x7x7 s1x2x2 p1x3x3", &[16, 112, 112])?;
/// assert_eq!(rows[0].out, [16, 56, 56]);
/// # Ok::<(), convlab::Error>(())
/// ```
///
/// # Errors
/// As [`parse_spec`] and [`receptive_fields`]; a size with another number
/// of parts than 1 or the input's rank; an input of rank 0 or above 3.
pub fn receptive_fields_nd(spec: &str, input: &[usize]) -> Result<Vec<LayerFieldNd>> {
    let rank = input.len();
    if !(1..=3).contains(&rank) {
        return Err(Error::param(
            "receptive_field",
            "input",
            format!("has {rank} sizes; give L, HxW or DxHxW"),
        ));
    }
    if rank == 2 {
        // The 2-D engine itself, whose messages name the image's sides.
        let fields = receptive_fields(&parse_spec(spec)?, Pair(input[0], input[1]))?;
        return Ok(fields
            .into_iter()
            .map(|f| LayerFieldNd {
                text: f.layer.text,
                out: vec![f.out.0, f.out.1],
                rf: vec![f.rf.0, f.rf.1],
                jump: vec![f.jump.0, f.jump.1],
                centre: vec![f.centre.0, f.centre.1],
            })
            .collect());
    }
    let mut rows: Vec<LayerFieldNd> = Vec::new();
    for (axis, &len) in input.iter().enumerate() {
        let layers = parse_spec(&spec_on_axis(spec, axis, rank)?)?;
        let fields = receptive_fields(&layers, Pair(len, len))?;
        if axis == 0 {
            rows = spec
                .split(',')
                .map(|t| LayerFieldNd {
                    text: t.trim().to_string(),
                    out: Vec::new(),
                    rf: Vec::new(),
                    jump: Vec::new(),
                    centre: Vec::new(),
                })
                .collect();
        }
        for (row, f) in rows.iter_mut().zip(fields) {
            row.out.push(f.out.0);
            row.rf.push(f.rf.0);
            row.jump.push(f.jump.0);
            row.centre.push(f.centre.0);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfs(spec: &str, input: usize) -> Vec<LayerField> {
        receptive_fields(&parse_spec(spec).unwrap(), Pair(input, input)).unwrap()
    }

    #[test]
    fn two_3x3_convs_see_5x5() {
        let r = rfs("conv3, conv3", 8);
        assert_eq!(
            (r[0].out, r[0].rf, r[0].jump),
            (Pair(6, 6), Pair(3, 3), Pair(1, 1))
        );
        assert_eq!(
            (r[1].out, r[1].rf, r[1].jump),
            (Pair(4, 4), Pair(5, 5), Pair(1, 1))
        );
        // The first output of conv3 is centred on pixel 1; of two, on pixel 2.
        assert_eq!(r[0].centre, (1.0, 1.0));
        assert_eq!(r[1].centre, (2.0, 2.0));
    }

    #[test]
    fn the_issue_example() {
        let r = rfs("conv3, conv3, maxpool2, conv3 s2 p1, conv5 d2", 40);
        let got: Vec<(usize, usize, usize, f64)> = r
            .iter()
            .map(|f| (f.out.0, f.rf.0, f.jump.0, f.centre.0))
            .collect();
        assert_eq!(
            got,
            [
                (38, 3, 1, 1.0),
                (36, 5, 1, 2.0),
                // Pool 2: field 5 + 1, jump 2, centre between pixels 2 and 3.
                (18, 6, 2, 2.5),
                // conv3 s2 p1: 6 + 2*2, jump 4, centre 2.5 + (1 - 1)*2.
                (9, 10, 4, 2.5),
                // conv5 d2 spans 9 taps: 10 + 8*4, centre 2.5 + 4*4.
                (1, 42, 4, 18.5),
            ]
        );
    }

    #[test]
    fn alexnet_fields() {
        // torchvision's AlexNet features on 224x224.
        let r = rfs(
            "conv11 s4 p2, relu, maxpool3 s2, conv5 p2, relu, maxpool3 s2, conv3 p1, conv3 p1, conv3 p1, maxpool3 s2",
            224,
        );
        let sizes: Vec<usize> = r.iter().map(|f| f.out.0).collect();
        assert_eq!(sizes, [55, 55, 27, 27, 27, 13, 13, 13, 13, 6]);
        let fields: Vec<usize> = r.iter().map(|f| f.rf.0).collect();
        assert_eq!(fields, [11, 11, 19, 51, 51, 67, 99, 131, 163, 195]);
        assert_eq!(r[9].jump, Pair(32, 32));
    }

    #[test]
    fn vgg16_fields() {
        let block = |n: usize| vec!["conv3 p1"; n].join(", ") + ", maxpool2";
        let spec = [block(2), block(2), block(3), block(3), block(3)].join(", ");
        let r = rfs(&spec, 224);
        let last = r.last().unwrap();
        assert_eq!(
            (last.out, last.rf, last.jump),
            (Pair(7, 7), Pair(212, 212), Pair(32, 32))
        );
        // After the second conv3 the field is 5, after the first pool 6.
        assert_eq!((r[1].rf.0, r[2].rf.0), (5, 6));
    }

    #[test]
    fn ceil_mode_and_rectangles() {
        let r = rfs("maxpool3 s2 ceil", 6);
        assert_eq!(r[0].out, Pair(3, 3));
        let r = receptive_fields(&parse_spec("conv3x5 s1x2").unwrap(), Pair(10, 20)).unwrap();
        assert_eq!(
            (r[0].out, r[0].rf, r[0].jump),
            (Pair(8, 8), Pair(3, 5), Pair(1, 2))
        );
        assert_eq!(r[0].centre, (1.0, 2.0));
        let r = rfs("conv3 psame, conv4 psame", 5);
        assert_eq!(r[1].out, Pair(5, 5));
        // Even kernel with same padding: 1 before, 2 after; centre 0 + (1.5 - 1).
        assert_eq!(r[1].centre.0, 0.5);
    }

    #[test]
    fn a_layer_that_no_longer_fits_is_named() {
        let layers = parse_spec("conv3, conv3, maxpool2, conv3 s2 p1, conv5 d2").unwrap();
        let e = receptive_fields(&layers, Pair(32, 32))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("layer 5 'conv5 d2' does not fit its 7x7 input"),
            "{e}"
        );
        assert!(e.contains("dilated kernel height 9"), "{e}");
        let e = receptive_fields(&parse_spec("maxpool3").unwrap(), Pair(2, 2)).unwrap_err();
        assert!(e.to_string().contains("layer 1 'maxpool3'"), "{e}");
    }

    #[test]
    fn bad_specs_are_errors() {
        for (spec, needle) in [
            ("conv", "kernel size '' is not a positive"),
            ("conv0", "kernel size '0'"),
            ("pool2", "'pool2' is not convK"),
            ("conv3 s0", "stride 's0' is not valid"),
            ("conv3 s2 s2", "stride is given twice"),
            ("conv3 q1", "unknown option 'q1'"),
            ("conv3 psame s2", "padding same needs stride 1"),
            ("maxpool2 p2", "at most half the kernel"),
            ("avgpool2 d2", "avgpool has no dilation"),
            ("conv3 ceil", "pooling layers only"),
            ("conv3,,conv3", "layer 2 '': is empty"),
            ("relu s2", "unknown option"),
            ("", "layer 1 '': is empty"),
        ] {
            let e = parse_spec(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec:?}: {e}");
        }
    }

    #[test]
    fn one_and_three_axes_follow_each_axis_rule() {
        // 1-D: two k9 convs around a pool, as an audio front end.
        let r = receptive_fields_nd("conv9 p4, maxpool2, conv9 p4", &[16000]).unwrap();
        let got: Vec<(usize, usize, usize)> =
            r.iter().map(|f| (f.out[0], f.rf[0], f.jump[0])).collect();
        assert_eq!(got, [(16000, 9, 1), (8000, 10, 2), (8000, 26, 2)]);
        // 3-D: a video stem, stride only in space, then a cube pool.
        let r = receptive_fields_nd("conv3x7x7 s1x2x2 p1x3x3, maxpool3 s2 p1", &[16, 112, 112])
            .unwrap();
        assert_eq!(r[0].out, [16, 56, 56]);
        assert_eq!(
            (r[0].rf.clone(), r[0].jump.clone()),
            (vec![3, 7, 7], vec![1, 2, 2])
        );
        assert_eq!(r[1].out, [8, 28, 28]);
        assert_eq!(
            (r[1].rf.clone(), r[1].jump.clone()),
            (vec![5, 11, 11], vec![2, 4, 4])
        );
        // Two-axis stacks give what receptive_fields gives.
        let two = receptive_fields_nd("conv3 s2 p1, conv5x3 d2", &[40, 30]).unwrap();
        let plain = receptive_fields(
            &parse_spec("conv3 s2 p1, conv5x3 d2").unwrap(),
            Pair(40, 30),
        )
        .unwrap();
        for (a, b) in two.iter().zip(&plain) {
            assert_eq!(a.out, [b.out.0, b.out.1]);
            assert_eq!(a.rf, [b.rf.0, b.rf.1]);
            assert_eq!(a.centre, [b.centre.0, b.centre.1]);
        }
        // A size with two parts on a 3-D input names the layer.
        let e = receptive_fields_nd("conv3, conv3x3", &[8, 8, 8])
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 2") && e.contains("1 or 3"), "{e}");
        assert!(receptive_fields_nd("conv3", &[]).is_err());
    }
}

//! The `torch.save` (.pt/.pth) reader: files written by PyTorch
//! (tests/fixtures/pth/, from tests/fixtures/gen_pth.py) read to exactly
//! what torch saved; refused formats and hostile or corrupt files are
//! one-line errors, never panics or allocations past the memory limit.

#[path = "pth_builder/mod.rs"]
mod builder;
mod common;

use builder::{archive, f32_bytes, Desc, Pickle};
use common::{expect_err, fixture_dir};
use convlab::io::{
    load_pth, load_pth_key, load_safetensors, load_safetensors_with_metadata, load_tensors,
    pth_from_bytes, pth_key_from_bytes, tensors_from_bytes,
};
use convlab::{Error, Tensor};
use std::path::PathBuf;

/// Every test runs under the same limit (the guard is process-wide and
/// tests run in parallel): above every fixture, below the hostile files.
const LIMIT: usize = 1 << 20;

fn limit() {
    convlab::memory::set_max_bytes(LIMIT);
}

fn pth(name: &str) -> PathBuf {
    fixture_dir().join("pth").join(name)
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.data().iter().map(|v| v.to_bits()).collect()
}

/// What torch saved: for file `f`, its names in order and their float32
/// values (tests/fixtures/pth/expected.safetensors).
fn expected(f: &str) -> Vec<(String, Tensor)> {
    let (all, meta) = load_safetensors_with_metadata(&pth("expected.safetensors")).unwrap();
    let order: Vec<String> = serde_json::from_str(&meta[f]).unwrap();
    order
        .into_iter()
        .map(|n| {
            let key = format!("{f}::{n}");
            let t = all.iter().find(|(k, _)| *k == key).unwrap().1.clone();
            (n, t)
        })
        .collect()
}

fn assert_same(file: &str, got: &[(String, Tensor)], want: &[(String, Tensor)]) {
    let names = |v: &[(String, Tensor)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(got), names(want), "{file}: names or their order");
    for ((n, g), (_, w)) in got.iter().zip(want) {
        assert_eq!(g.shape(), w.shape(), "{file}: {n} shape");
        assert_eq!(bits(g), bits(w), "{file}: {n} values");
    }
}

#[test]
fn files_from_torch_read_to_what_torch_saved() {
    limit();
    for f in [
        "conv_bn_linear_f32.pt",
        "conv_bn_linear_f16.pt",
        "conv_bn_linear_bf16.pt",
        "conv_bn_linear_f64.pt",
        "protocol4.pt",
        "views.pt",
        "big_endian.pt",
    ] {
        let got = load_pth(&pth(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_same(f, &got, &expected(f));
    }
    let got = load_pth_key(&pth("checkpoint.pt"), "model").unwrap();
    assert_same("checkpoint.pt", &got, &expected("checkpoint.pt"));
}

#[test]
fn state_dict_holds_conv_bn_linear_with_num_batches_tracked() {
    limit();
    let sd = load_pth(&pth("conv_bn_linear_f16.pt")).unwrap();
    let names: Vec<&str> = sd.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked",
            "5.weight",
            "5.bias"
        ]
    );
    assert_eq!(sd[0].1.shape(), [4, 3, 3, 3]);
    // int64, 0-dim, one training step.
    assert_eq!((sd[6].1.shape(), sd[6].1.data()), (&[][..], &[1.0f32][..]));
}

#[test]
fn views_gather_through_strides_and_share_storage() {
    limit();
    let sd = load_pth(&pth("views.pt")).unwrap();
    let get = |n: &str| sd.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let base = get("base");
    let (b, t) = (base.data(), get("t"));
    assert_eq!(t.shape(), [4, 3]);
    for i in 0..3 {
        for j in 0..4 {
            assert_eq!(t.data()[j * 3 + i], b[i * 4 + j]);
        }
        assert_eq!(get("col").data()[i], b[i * 4 + 2]);
    }
    assert_eq!(get("row").data(), &b[4..8]);
    assert_eq!(get("expanded").data(), [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
    assert_eq!(get("empty").shape(), [0, 5]);
    // Integers round to the nearest f32, as torch's .float() does.
    assert_eq!(
        get("int64").data(),
        [
            (1u64 << 40) as f32,
            -3.0,
            (1u64 << 53) as f32,
            (1u64 << 62) as f32
        ]
    );
    assert_eq!(get("bool").data(), [1.0, 0.0, 1.0]);
}

#[test]
fn load_tensors_tells_the_formats_apart_by_content() {
    limit();
    let pt = pth("conv_bn_linear_f32.pt");
    assert_same(
        "sniffed .pt",
        &load_tensors(&pt).unwrap(),
        &load_pth(&pt).unwrap(),
    );
    let st = pth("expected.safetensors");
    assert_same(
        "sniffed safetensors",
        &load_tensors(&st).unwrap(),
        &load_safetensors(&st).unwrap(),
    );
    let npy = convlab::io::npy_to_bytes(&Tensor::scalar(1.0));
    expect_err(
        tensors_from_bytes(&npy),
        &["load_tensors: ", ".npy array", "read_npy"],
    );
    expect_err(
        tensors_from_bytes(b"hello, world"),
        &[
            "load_tensors: neither a safetensors file",
            "[0x68, 0x65, 0x6c, 0x6c, ...]",
        ],
    );
    expect_err(tensors_from_bytes(b""), &["load_tensors: ", "it is empty"]);
    // A safetensors header 128 + 256 k bytes long starts with 0x80, the
    // first byte of a legacy pickle: the header's frame decides (torchvision
    // googlenet's and resnet50's state dicts were misread as pickles).
    let json = br#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut file = (0x180u64).to_le_bytes().to_vec();
    file.extend_from_slice(json);
    file.resize(8 + 0x180, b' ');
    file.extend_from_slice(&2.5f32.to_le_bytes());
    assert_eq!(file[0], 0x80);
    let got = tensors_from_bytes(&file).unwrap();
    assert_eq!(got[0].0, "a");
    assert_eq!(got[0].1.data(), &[2.5]);
    // Errors of the reader the content picked keep its name.
    expect_err(
        load_tensors(&pth("legacy.pt")),
        &["pth: ", "legacy.pt", "legacy format"],
    );
}

#[test]
fn a_checkpoint_names_its_state_dict() {
    limit();
    let ck = pth("checkpoint.pt");
    expect_err(
        load_pth(&ck),
        &[
            "pth: ",
            "checkpoint.pt: the file maps 'model' to a dict, not a tensor",
            "looks like a checkpoint",
            "under 'model' with load_pth_key",
        ],
    );
    expect_err(
        load_pth_key(&ck, "state_dict"),
        &["has no key 'state_dict' (its keys: 'model', 'optimizer', 'epoch'"],
    );
    expect_err(
        load_pth_key(&ck, "epoch"),
        &["entry 'epoch' holds an int, not a dict"],
    );
    expect_err(
        load_pth_key(&ck, "optimizer"),
        &["entry 'optimizer' maps 'state' to a dict, not a tensor"],
    );
    expect_err(
        load_pth_key(&pth("views.pt"), "base"),
        &["entry 'base' holds a tensor, not a dict"],
    );
}

#[test]
fn refused_formats_say_what_they_are() {
    limit();
    expect_err(
        load_pth(&pth("legacy.pt")),
        &[
            "legacy format",
            "_use_new_zipfile_serialization=False",
            "torch.save it again",
        ],
    );
    expect_err(
        load_pth(&pth("torchscript.pt")),
        &["TorchScript archive (torch.jit.save)"],
    );
    // Python would run os.system on load; here it is a name not in the table.
    expect_err(
        load_pth(&pth("os_system.pt")),
        &[
            "data.pkl refers to 'posix.system'",
            "nothing in the file is run",
        ],
    );
    expect_err(
        load_pth(&pth("whole_model.pt")),
        &[
            "refers to 'torch.nn.modules.linear.Linear'",
            "save model.state_dict() instead",
        ],
    );
    expect_err(
        pth_from_bytes(b"PK\x05\x06"),
        &["pth: malformed zip container"],
    );
    let plain_zip = builder::zip_of(&[("a/readme.txt", b"hi")]);
    expect_err(pth_from_bytes(&plain_zip), &["no <folder>/data.pkl record"]);
}

#[test]
fn truncated_files_are_errors() {
    limit();
    let good = std::fs::read(pth("conv_bn_linear_f32.pt")).unwrap();
    for n in 0..good.len() {
        let r = pth_from_bytes(&good[..n]);
        assert!(
            r.is_err(),
            "a file cut to {n} of {} bytes was read",
            good.len()
        );
        let msg = r.unwrap_err().to_string();
        assert!(msg.starts_with("pth: ") && !msg.contains('\n'), "{msg}");
    }
}

#[test]
fn a_flipped_bit_is_an_error_or_changes_nothing() {
    limit();
    // A bit of a record the reader uses (data.pkl, byteorder, a storage)
    // fails its CRC; one in bytes it does not use (a timestamp, alignment
    // padding, the serialization id) leaves the values as they were. No
    // flip may give other values. One bit per byte, cycling through the 8.
    let good = std::fs::read(pth("conv_bn_linear_f32.pt")).unwrap();
    let want = pth_from_bytes(&good).unwrap();
    let used = used_record_bytes(&good);
    assert!(used.len() > 1000, "{} bytes in used records", used.len());
    for i in 0..good.len() {
        let mut b = good.clone();
        b[i] ^= 1 << (i % 8);
        match pth_from_bytes(&b) {
            Ok(got) => {
                assert!(
                    !used.contains(&i),
                    "a flip of byte {i}, inside a record, was read"
                );
                assert_same(&format!("byte {i} flipped"), &got, &want);
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with("pth: ") && !msg.contains('\n'), "{msg}");
            }
        }
    }
}

/// The byte positions of the data of the records the reader uses.
fn used_record_bytes(file: &[u8]) -> std::collections::HashSet<usize> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(file)).unwrap();
    let mut used = std::collections::HashSet::new();
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let rest = name.split_once('/').unwrap().1;
        if rest == "data.pkl" || rest == "byteorder" || rest.starts_with("data/") {
            let start = entry.data_start().unwrap() as usize;
            used.extend(start..start + entry.size() as usize);
        }
    }
    used
}

fn crafted(descs: &[Desc], storages: &[(&str, &[u8])]) -> convlab::Result<Vec<(String, Tensor)>> {
    pth_from_bytes(&archive(&Pickle::state_dict(descs), storages))
}

#[test]
fn a_crafted_file_reads_as_described() {
    limit();
    // The builder's files are right, so the refusals below are the checks'.
    let data = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let w = Desc::f32("w", "0", &[2, 3]);
    let mut col = Desc::f32("c", "0", &[2]);
    (col.offset, col.stride, col.numel) = (1, vec![3], 6);
    let got = crafted(&[w, col], &[("0", &data)]).unwrap();
    assert_eq!(got[0].1.data(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(got[1].1.data(), [2.0, 5.0]);
}

#[test]
fn sizes_strides_and_offsets_outside_the_storage_are_errors() {
    limit();
    let data = f32_bytes(&[0.0; 6]);
    let st = [("0", data.as_slice())];
    let base = Desc::f32("w", "0", &[2, 3]);
    let with = |f: &dyn Fn(&mut Desc)| {
        let mut d = base.clone();
        f(&mut d);
        crafted(&[d], &st)
    };
    let past = "reaches past the end of storage '0' (6 float32 values)";
    expect_err(
        with(&|d| d.offset = 1),
        &["tensor 'w': ", "storage offset 1", past],
    );
    expect_err(with(&|d| d.stride = vec![4, 1]), &["stride [4, 1]", past]);
    expect_err(with(&|d| d.size = vec![3, 3]), &["size [3, 3]", past]);
    expect_err(
        with(&|d| d.stride = vec![i64::MAX, 1]),
        &["stride [9223372036854775807, 1]", past],
    );
    expect_err(
        with(&|d| d.size = vec![1 << 62, 1 << 62]),
        &["more elements than fit in memory"],
    );
    expect_err(
        with(&|d| d.offset = i64::MAX),
        &["storage offset 9223372036854775807", past],
    );
    expect_err(
        with(&|d| d.size = vec![-1, 3]),
        &["size that is not a tuple of ints >= 0"],
    );
    expect_err(
        with(&|d| d.stride = vec![-3, 1]),
        &["stride that is not a tuple of ints >= 0"],
    );
    expect_err(
        with(&|d| d.offset = -1),
        &["storage offset that is not an int >= 0"],
    );
    expect_err(with(&|d| d.stride = vec![1]), &["2 sizes but 1 strides"]);
    // The storage's declared length must be its record's.
    expect_err(
        with(&|d| d.numel = 5),
        &["storage '0' holds 24 bytes, not the 5 float32 values (4 bytes each)"],
    );
    expect_err(
        with(&|d| d.numel = i64::MAX),
        &["holds 24 bytes, not the 9223372036854775807"],
    );
    expect_err(
        with(&|d| d.class = "HalfStorage"),
        &["not the 6 float16 values"],
    );
    expect_err(
        with(&|d| d.key = "7".into()),
        &["storage '7', which the archive does not hold"],
    );
    // An empty tensor reads nothing, whatever its offset, as in PyTorch.
    let empty = with(&|d| (d.size, d.offset) = (vec![0, 1 << 62], 99)).unwrap();
    assert_eq!(empty[0].1.shape(), [0, 1 << 62]);
}

#[test]
fn the_memory_limit_bounds_all_tensors_together() {
    limit();
    // One storage of a quarter of the limit, viewed by many tensors: each
    // fits, together they would hold 100 times the storage.
    let n = LIMIT / 16;
    let data = f32_bytes(&vec![0.5; n]);
    let descs: Vec<Desc> = (0..100)
        .map(|i| Desc::f32(&format!("t{i}"), "0", &[n as i64]))
        .collect();
    let r = crafted(&descs, &[("0", &data)]);
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
    expect_err(r, &["pth: tensor 't4': needs", "over the memory limit"]);
    assert_eq!(crafted(&descs[..3], &[("0", &data)]).unwrap().len(), 3);
}

#[test]
fn devices_are_read_no_further_than_the_limit() {
    limit();
    let r = load_pth("/dev/zero".as_ref());
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
    expect_err(
        r,
        &["pth: /dev/zero holds more than ", "over the memory limit"],
    );
    expect_err(
        load_tensors("/dev/null".as_ref()),
        &["load_tensors: /dev/null: ", "empty"],
    );
}

#[test]
fn opcodes_and_globals_outside_a_state_dict_are_refused() {
    limit();
    let run = |p: &Pickle| pth_from_bytes(&archive(&p.0, &[]));
    let mut p = Pickle::new();
    p.global("builtins", "eval").str("1").op(b"\x85R.");
    expect_err(run(&p), &["refers to 'builtins.eval'"]);
    let mut p = Pickle::new();
    p.op(b"(ibuiltins\nexec\n.");
    expect_err(run(&p), &["opcode INST (0x69) at byte 3"]);
    let mut p = Pickle::new();
    p.global("collections", "OrderedDict").op(b")\x81.");
    expect_err(run(&p), &["opcode NEWOBJ (0x81)"]);
    let mut p = Pickle::new();
    p.str("os").str("system").op(b"\x93.");
    expect_err(run(&p), &["refers to 'os.system'"]);
    // Allowed globals cannot be misused either.
    let mut p = Pickle::new();
    p.global("torch", "FloatStorage").op(b")R.");
    expect_err(run(&p), &["torch.FloatStorage is called at byte"]);
    let mut p = Pickle::new();
    p.op(b"NNb.");
    expect_err(
        run(&p),
        &["sets the state of None, which convlab does not allow"],
    );
    let mut p = Pickle::new();
    p.op(b"]").global("builtins", "list");
    expect_err(run(&p), &["'builtins.list'"]);
    let mut p = Pickle::new();
    p.op(b"N").ordered_dict().op(b"sb.");
    expect_err(run(&p), &["needs a value and the stack is empty"]);
    let mut p = Pickle::new();
    p.op(b"\x80\x06");
    expect_err(run(&p), &["pickle protocol 6"]);
}

#[test]
fn malformed_pickles_are_errors() {
    limit();
    let run = |bytes: &[u8]| pth_from_bytes(&archive(bytes, &[]));
    expect_err(run(b"\x80\x02"), &["ends inside the opcode at byte 2"]);
    expect_err(
        run(b"\x80\x02h\x05."),
        &["reads memo entry 5, which was never written"],
    );
    expect_err(run(b"\x80\x02t."), &["needs a MARK and there is none"]);
    expect_err(run(b"\x80\x02."), &["needs a value and the stack is empty"]);
    expect_err(
        run(b"\x80\x02X\xff\xff\xff\xff."),
        &["ends inside the opcode at byte 2"],
    );
    expect_err(
        run(b"\x80\x02\x8c\x02\xff\xfe."),
        &["string at byte 2 is not UTF-8"],
    );
    expect_err(run(b"\x80\x02\x8a\x09123456789."), &["9-byte integer"]);
    expect_err(
        run(b"\x80\x02(K\x01d."),
        &["not key-value pairs (1 values)"],
    );
    expect_err(run(b"\x80\x02K\x01K\x02a."), &["appends to an int"]);
    expect_err(
        run(b"\x80\x02}K\x01K\x02s."),
        &["is a dict with an int as a key"],
    );
    expect_err(
        run(b"\x80\x02N."),
        &["the file holds None, not a dict of tensors"],
    );
    let mut p = Pickle::new();
    p.op(b"}").str("a").op(b"N").str("a").op(b"Nu.");
    p.0.insert(3, b'(');
    expect_err(run(&p.0), &["the key 'a' twice"]);
    // Deep nesting is iterative: 200,000 nested lists, no stack overflow.
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b'(', 200_000));
    deep.extend(std::iter::repeat_n(b'l', 200_000));
    deep.push(b'.');
    expect_err(run(&deep), &["the file holds a list, not a dict"]);
}

#[test]
fn malformed_containers_are_errors() {
    limit();
    let good = archive(&Pickle::state_dict(&[]), &[]);
    assert!(pth_from_bytes(&good).unwrap().is_empty());
    let mut byteorder = archive(&Pickle::state_dict(&[]), &[]);
    let at = byteorder.windows(6).position(|w| w == b"little").unwrap();
    byteorder[at..at + 6].copy_from_slice(b"middle");
    expect_err(pth_from_bytes(&byteorder), &["fails its CRC-32 check"]);
    let two = builder::zip_of(&[("a/data.pkl", b"\x80\x02}."), ("b/data.pkl", b"\x80\x02}.")]);
    expect_err(pth_from_bytes(&two), &["data.pkl in two folders"]);
    let bad_order = builder::zip_of(&[("a/data.pkl", b"\x80\x02}."), ("a/byteorder", b"middle")]);
    expect_err(
        pth_from_bytes(&bad_order),
        &["byteorder record is 'middle'"],
    );
    // A record claiming compression (method 8, deflate) is refused, not inflated.
    let mut deflated = good.clone();
    let cd = deflated
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .unwrap();
    deflated[cd + 10] = 8;
    expect_err(
        pth_from_bytes(&deflated),
        &["record 'archive/data.pkl' is compressed"],
    );
    // Keys by name: pth_key_from_bytes on a file that is a plain state dict.
    expect_err(
        pth_key_from_bytes(&good, "model"),
        &["has no key 'model' (its keys: none)"],
    );
}

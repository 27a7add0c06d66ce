//! Unit tests of io/npy.rs.

use super::*;

/// A `.npy` file with `dict` as header (padded to 64 bytes) and `data`.
fn npy(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let len_size = if major == 1 { 2 } else { 4 };
    let unpadded = 8 + len_size + dict.len() + 1;
    let hl = unpadded.div_ceil(64) * 64 - 8 - len_size;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&(hl as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(hl as u32).to_le_bytes());
    }
    let mut h = dict.as_bytes().to_vec();
    h.resize(hl - 1, b' ');
    h.push(b'\n');
    out.extend(h);
    out.extend_from_slice(data);
    out
}

fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    let f = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {shape}, }}")
}

fn err(bytes: &[u8]) -> String {
    let e = npy_from_bytes(bytes).unwrap_err();
    let s = e.to_string();
    assert!(!s.contains('\n'), "one line: {s}");
    s
}

#[test]
fn writer_header_is_what_numpy_writes() {
    let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let b = npy_to_bytes(&t);
    // np.save of np.arange(6, dtype='<f4').reshape(2, 3) + 1: 128-byte header.
    let mut h =
        b"\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
            .to_vec();
    h.resize(127, b' ');
    h.push(b'\n');
    assert_eq!(&b[..128], &h[..]);
    assert_eq!(b.len(), 128 + 24);
    assert_eq!(&b[128..132], &1.0f32.to_le_bytes());
    let scalar = npy_to_bytes(&Tensor::scalar(1.0));
    assert!(scalar[10..].starts_with(b"{'descr': '<f4', 'fortran_order': False, 'shape': (), }"));
    assert_eq!(scalar.len(), 128 + 4);
    let one_d = npy_to_bytes(&Tensor::from_vec(vec![0.0; 3], &[3]).unwrap());
    assert!(String::from_utf8_lossy(&one_d[..128]).contains("'shape': (3,), }"));
    assert_eq!((one_d.len() - 12) % 64, 0);
}

#[test]
fn header_outgrowing_u16_switches_to_v2() {
    let shape = vec![1usize; 30_000];
    let t = Tensor::from_vec(vec![7.0], &shape).unwrap();
    let b = npy_to_bytes(&t);
    assert_eq!(b[6], 2);
    assert_eq!(b.len() % 64, 4);
    assert_eq!(npy_from_bytes(&b).unwrap(), t);
}

#[test]
fn reads_f8_i8_u1_bool_f2() {
    let f8: Vec<u8> = [1.5f64, -2.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let t = npy_from_bytes(&npy(1, &dict("<f8", false, "(2,)"), &f8)).unwrap();
    assert_eq!((t.shape(), t.data()), (&[2usize][..], &[1.5f32, -2.25][..]));

    let i8s: Vec<u8> = [-3i64, 1 << 40]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let t = npy_from_bytes(&npy(1, &dict("<i8", false, "(1, 2)"), &i8s)).unwrap();
    assert_eq!(t.data(), &[-3.0, 1_099_511_627_776.0]);

    let t = npy_from_bytes(&npy(1, &dict("|u1", false, "(2, 2)"), &[0, 1, 128, 255])).unwrap();
    assert_eq!(
        (t.shape(), t.data()),
        (&[2usize, 2][..], &[0.0f32, 1.0, 128.0, 255.0][..])
    );

    let t = npy_from_bytes(&npy(1, &dict("|b1", false, "(3,)"), &[1, 0, 1])).unwrap();
    assert_eq!(t.data(), &[1.0, 0.0, 1.0]);

    let t = npy_from_bytes(&npy(
        1,
        &dict("<f2", false, "(2,)"),
        &[0x00, 0x3c, 0x00, 0xc0],
    ))
    .unwrap();
    assert_eq!(t.data(), &[1.0, -2.0]);

    let t = npy_from_bytes(&npy(1, &dict("|i1", false, "(2,)"), &[0xff, 0x7f])).unwrap();
    assert_eq!(t.data(), &[-1.0, 127.0]);
}

#[test]
fn reads_big_endian() {
    let be: Vec<u8> = [1.0f32, -0.5, 3.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let t = npy_from_bytes(&npy(1, &dict(">f4", false, "(3,)"), &be)).unwrap();
    assert_eq!(t.data(), &[1.0, -0.5, 3.0]);
    let be: Vec<u8> = [-7i32, 65536]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let t = npy_from_bytes(&npy(1, &dict(">i4", false, "(2,)"), &be)).unwrap();
    assert_eq!(t.data(), &[-7.0, 65536.0]);
    let be: Vec<u8> = [2.5f64].iter().flat_map(|v| v.to_be_bytes()).collect();
    let t = npy_from_bytes(&npy(1, &dict(">f8", false, "()"), &be)).unwrap();
    assert_eq!((t.shape(), t.data()), (&[][..], &[2.5f32][..]));
}

#[test]
fn reads_fortran_order() {
    // np.asfortranarray(np.arange(6).reshape(2, 3)) stores 0 3 1 4 2 5.
    let data: Vec<u8> = [0i32, 3, 1, 4, 2, 5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let t = npy_from_bytes(&npy(1, &dict("<i4", true, "(2, 3)"), &data)).unwrap();
    assert_eq!(t.shape(), &[2, 3]);
    assert_eq!(t.data(), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);

    // Rank 3, shape (2, 3, 4): element (i, j, k) = 100i + 10j + k sits at i + 2j + 6k.
    let mut f = [0f32; 24];
    for i in 0..2 {
        for j in 0..3 {
            for k in 0..4 {
                f[i + 2 * j + 6 * k] = (100 * i + 10 * j + k) as f32;
            }
        }
    }
    let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
    let t = npy_from_bytes(&npy(1, &dict("<f4", true, "(2, 3, 4)"), &bytes)).unwrap();
    assert_eq!(t.get(&[1, 2, 3]).unwrap(), 123.0);
    assert_eq!(t.get(&[0, 1, 2]).unwrap(), 12.0);
    assert_eq!(t.data()[..5], [0.0, 1.0, 2.0, 3.0, 10.0]);

    // 1-d and empty arrays are the same in either order.
    let t = npy_from_bytes(&npy(1, &dict("|u1", true, "(3,)"), &[1, 2, 3])).unwrap();
    assert_eq!(t.data(), &[1.0, 2.0, 3.0]);
    let t = npy_from_bytes(&npy(1, &dict("<f4", true, "(0, 3)"), &[])).unwrap();
    assert_eq!(t.shape(), &[0, 3]);
}

#[test]
fn reads_v2_and_v3_headers_and_variants() {
    let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    for major in [2u8, 3] {
        let t = npy_from_bytes(&npy(major, &dict("<f4", false, "(2,)"), &data)).unwrap();
        assert_eq!(t.data(), &[1.0, 2.0], "v{major}");
    }
    // Double quotes, no trailing comma, other key order, Python 2 longs.
    let d = "{\"shape\": (1L, 2L), \"fortran_order\": False, \"descr\": \"<f4\"}";
    let t = npy_from_bytes(&npy(1, d, &data)).unwrap();
    assert_eq!(t.shape(), &[1, 2]);
}

#[test]
fn malformed_files_are_errors() {
    let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let good = npy(1, &dict("<f4", false, "(2,)"), &data);
    assert!(npy_from_bytes(&good).is_ok());

    assert!(err(b"").contains("magic"));
    assert!(err(b"\x93NUMPX\x01\x00\x00\x00").contains("magic"));
    let mut v = good.clone();
    v[6] = 4;
    assert!(err(&v).contains("version 4.0"));
    assert!(err(&good[..9]).contains("header length"));
    for cut in [20, 60, good.len() - 1] {
        let e = err(&good[..cut]);
        assert!(
            e.contains("past the end") || e.contains("data has"),
            "{cut}: {e}"
        );
    }
    let mut long = good.clone();
    long.push(0);
    assert!(err(&long).contains("data has 9 bytes"));
    // Header length pointing far past the end.
    let mut v = good.clone();
    v[8] = 0xff;
    v[9] = 0xff;
    assert!(err(&v).contains("past the end"));
    let mut v = npy(2, &dict("<f4", false, "(2,)"), &data);
    v[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(err(&v).contains("past the end"));
}

#[test]
fn bad_headers_are_errors() {
    let data = [0u8; 8];
    let cases = [
        ("not a dict", "not a dict"),
        ("{'descr': '<f4', 'fortran_order': False}", "no 'shape'"),
        ("{'descr': '<f4', 'shape': (2,)}", "no 'fortran_order'"),
        ("{'fortran_order': False, 'shape': (2,)}", "no 'descr'"),
        (
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}",
            "'<c8' is not supported",
        ),
        (
            "{'descr': 'f4', 'fortran_order': False, 'shape': (2,)}",
            "'f4' is not supported",
        ),
        (
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}",
            "structured",
        ),
        (
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}",
            "unexpected value",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': 2}",
            "unexpected value",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2)}",
            "not a tuple",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}",
            "non-negative",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",
            "unexpected key 'x'",
        ),
        (
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
            "twice",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk",
            "after the dict",
        ),
        (
            "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}",
            "expected ',' or '}'",
        ),
        (
            "{'descr' '<f4', 'fortran_order': False, 'shape': (2,)}",
            "expected ':' after 'descr'",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': {}}",
            "unexpected value",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)",
            "expected ',' or '}'",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'a\\b': 1}",
            "escape",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape: (2,)}",
            "unterminated",
        ),
        ("{True: 1}", "not a string"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'a\nb': 1}",
            "key 'a\\nb'",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2",
            "expected ',' or ')'",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,",
            "non-negative",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
            "does not fit",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': ('2',)}",
            "non-negative",
        ),
        (
            "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}",
            "expected ',' or '}'",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ",
            "unexpected value",
        ),
    ];
    for (d, want) in cases {
        let e = err(&npy(1, d, &data));
        assert!(
            e.starts_with("npy: ") && e.contains(want),
            "{d}\n  gave: {e}"
        );
    }
}

#[test]
fn shape_mismatch_and_huge_shapes_are_errors() {
    let e = err(&npy(1, &dict("<f4", false, "(3,)"), &[0u8; 8]));
    assert_eq!(e, "npy: data has 8 bytes but shape [3] of '<f4' needs 12");
    let e = err(&npy(
        1,
        &dict("<f4", false, "(4294967296, 4294967296, 4294967296)"),
        &[],
    ));
    assert!(e.contains("more elements than fit"), "{e}");
    let e = err(&npy(1, &dict("<f8", false, "(4611686018427387904,)"), &[]));
    assert!(e.contains("more bytes than fit"), "{e}");
    let e = err(&npy(
        1,
        &dict("<f4", false, "(1000000, 1000000)"),
        &[0u8; 16],
    ));
    assert!(e.contains("data has 16 bytes"), "{e}");
}

#[test]
fn round_trip_shapes() {
    for shape in [
        vec![],
        vec![0],
        vec![5],
        vec![2, 3],
        vec![2, 0, 4],
        vec![1, 2, 3, 4, 5],
    ] {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
        let t = Tensor::from_vec(data, &shape).unwrap();
        let b = npy_to_bytes(&t);
        assert_eq!((b.len() - 4 * n) % 64, 0, "{shape:?}");
        assert_eq!(npy_from_bytes(&b).unwrap(), t, "{shape:?}");
    }
}

#[test]
fn never_panics_on_mutated_bytes() {
    let t = Tensor::from_vec((0..12).map(|i| i as f32).collect(), &[3, 4]).unwrap();
    let good = npy_to_bytes(&t);
    // Every single-byte change and every truncation must be Ok or Err, never a panic.
    for i in 0..good.len() {
        for b in [0u8, b' ', b'(', b')', b',', b'\'', b'9', 0xff] {
            let mut v = good.clone();
            v[i] = b;
            let _ = npy_from_bytes(&v);
        }
        let _ = npy_from_bytes(&good[..i]);
    }
}

//! Files written and read back through `convlab::io`, the PyTorch-made
//! fixtures, the sample images, and broken files that must be errors.

use convlab::io::{
    load_image, load_safetensors, npy_from_bytes, npy_to_bytes, read_npy, save_image,
    save_safetensors, write_atomic, write_npy, Normalize,
};
use convlab::{Error, Tensor};
use std::fs;
use std::path::{Path, PathBuf};

fn root(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// A fresh, empty directory for one test.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("convlab-io-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn ramp(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        (0..n).map(|i| (i as f32 * 0.37).sin() * 10.0).collect(),
        shape,
    )
    .unwrap()
}

#[test]
fn npy_files_round_trip() {
    let d = scratch("npy");
    for (i, shape) in [&[][..], &[0], &[7], &[3, 4], &[2, 3, 5], &[2, 1, 3, 3]]
        .iter()
        .enumerate()
    {
        let t = ramp(shape);
        let p = d.join(format!("t{i}.npy"));
        write_npy(&p, &t).unwrap();
        assert_eq!(fs::read(&p).unwrap(), npy_to_bytes(&t), "{shape:?}");
        assert_eq!(read_npy(&p).unwrap(), t, "{shape:?}");
    }
    // Overwriting replaces the content and leaves only the six files.
    let p = d.join("t0.npy");
    write_npy(&p, &Tensor::scalar(-1.0)).unwrap();
    assert_eq!(read_npy(&p).unwrap().item().unwrap(), -1.0);
    assert_eq!(entries(&d).len(), 6);
    assert!(entries(&d)
        .iter()
        .all(|n| n.ends_with(".npy") && !n.starts_with('.')));
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn broken_npy_files_name_the_file() {
    let d = scratch("npy-bad");
    let good = npy_to_bytes(&ramp(&[4, 4]));
    let p = d.join("cut.npy");
    fs::write(&p, &good[..good.len() - 3]).unwrap();
    let e = read_npy(&p).unwrap_err();
    assert!(matches!(e, Error::Io { op: "npy", .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("cut.npy") && msg.contains("data has 61 bytes"),
        "{msg}"
    );

    let e = read_npy(&d.join("missing.npy")).unwrap_err().to_string();
    assert!(
        e.starts_with("npy: cannot read ") && e.contains("missing.npy"),
        "{e}"
    );

    fs::write(&p, b"PK\x03\x04 a zip, perhaps an .npz").unwrap();
    assert!(read_npy(&p).unwrap_err().to_string().contains("magic"));
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn huge_npy_shape_is_an_error_without_allocating() {
    // 2^40 float32s declared, 8 bytes present: must be refused from the header.
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }";
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    let hl = 128 - 10;
    b.extend_from_slice(&(hl as u16).to_le_bytes());
    b.extend_from_slice(dict.as_bytes());
    b.resize(127, b' ');
    b.push(b'\n');
    b.extend_from_slice(&[0; 8]);
    let e = npy_from_bytes(&b).unwrap_err().to_string();
    assert!(
        e.contains("data has 8 bytes") && e.contains("[1048576, 1048576]"),
        "{e}"
    );
}

#[test]
fn safetensors_files_round_trip() {
    let d = scratch("st");
    let (w, b) = (ramp(&[4, 3, 3, 3]), ramp(&[4]));
    let p = d.join("m.safetensors");
    save_safetensors(&p, &[("conv.weight", &w), ("conv.bias", &b)]).unwrap();
    let back = load_safetensors(&p).unwrap();
    assert_eq!(
        back,
        vec![
            ("conv.bias".to_string(), b.clone()),
            ("conv.weight".to_string(), w)
        ]
    );
    save_safetensors(&p, &[("only", &b)]).unwrap();
    assert_eq!(load_safetensors(&p).unwrap().len(), 1);
    assert_eq!(entries(&d), ["m.safetensors"]);

    let e = load_safetensors(&d.join("nope.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("safetensors: cannot read "), "{e}");
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() - 2]).unwrap();
    let e = load_safetensors(&p).unwrap_err().to_string();
    assert!(
        e.contains("m.safetensors") && e.contains("truncated"),
        "{e}"
    );
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn reads_the_pytorch_state_dict() {
    let sd = load_safetensors(&root("tests/fixtures/torch_model.safetensors")).unwrap();
    let got: Vec<(&str, &[usize])> = sd.iter().map(|(n, t)| (n.as_str(), t.shape())).collect();
    let want: [(&str, &[usize]); 6] = [
        ("0.bias", &[8]),
        ("0.weight", &[8, 3, 3, 3]),
        ("3.bias", &[8]),
        ("3.weight", &[8, 4, 3, 3]),
        ("7.bias", &[5]),
        ("7.weight", &[5, 32]),
    ];
    assert_eq!(got, want);
    // PyTorch's default init: uniform in +-1/sqrt(fan_in), so never all zero and bounded.
    let (_, w0) = &sd[1];
    let bound = 1.0 / 27f32.sqrt();
    assert!(w0.data().iter().all(|v| v.abs() <= bound + 1e-6));
    assert!(w0.data().iter().any(|&v| v != 0.0));

    // Saving and reloading is lossless and keeps the names.
    let d = scratch("torch");
    let p = d.join("again.safetensors");
    let refs: Vec<(&str, &Tensor)> = sd.iter().map(|(n, t)| (n.as_str(), t)).collect();
    save_safetensors(&p, &refs).unwrap();
    assert_eq!(load_safetensors(&p).unwrap(), sd);
    fs::remove_dir_all(&d).unwrap();

    let io = load_safetensors(&root("tests/fixtures/torch_model_io.safetensors")).unwrap();
    let shapes: Vec<(&str, &[usize])> = io.iter().map(|(n, t)| (n.as_str(), t.shape())).collect();
    assert_eq!(
        shapes,
        [("input", &[2usize, 3, 16, 16][..]), ("output", &[2, 5][..])]
    );
}

#[test]
fn reads_the_conformance_tensors() {
    let all = load_safetensors(&root("tests/fixtures/tensors.safetensors")).unwrap();
    assert!(all.len() > 10);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "sorted by name");
}

#[test]
fn png_round_trips_gray_and_rgb() {
    let d = scratch("png");
    // Levels k/255 survive 8-bit quantisation exactly (up to f32 rounding).
    let (h, w) = (5, 7);
    let gray = Tensor::from_vec(
        (0..h * w).map(|i| (i * 7 % 256) as f32 / 255.0).collect(),
        &[h, w],
    )
    .unwrap();
    let p = d.join("g.png");
    save_image(&p, &gray, Normalize::Clip).unwrap();
    let back = load_image(&p, false).unwrap();
    assert_eq!(back.shape(), &[h, w]);
    assert!(back.max_abs_diff(&gray).unwrap() < 1e-6);

    let one = gray.reshape(&[1, h, w]).unwrap();
    save_image(&p, &one, Normalize::Clip).unwrap();
    assert!(load_image(&p, false).unwrap().max_abs_diff(&gray).unwrap() < 1e-6);

    let rgb = Tensor::from_vec(
        (0..3 * h * w)
            .map(|i| (i * 11 % 256) as f32 / 255.0)
            .collect(),
        &[3, h, w],
    )
    .unwrap();
    let p = d.join("c.PNG");
    save_image(&p, &rgb, Normalize::Clip).unwrap();
    let back = load_image(&p, false).unwrap();
    assert_eq!(back.shape(), &[3, h, w]);
    assert!(back.max_abs_diff(&rgb).unwrap() < 1e-6);

    // Gray of colour: ITU-R BT.601 weights.
    let g = load_image(&p, true).unwrap();
    assert_eq!(g.shape(), &[h, w]);
    let (r, gg, b) = (
        rgb.get(&[0, 2, 3]).unwrap(),
        rgb.get(&[1, 2, 3]).unwrap(),
        rgb.get(&[2, 2, 3]).unwrap(),
    );
    let want = 0.299 * r + 0.587 * gg + 0.114 * b;
    assert!((g.get(&[2, 3]).unwrap() - want).abs() < 1e-6);

    // MinMax stretches any range to 0..1.
    let p = d.join("m.png");
    save_image(&p, &gray.scale(40.0).map(|v| v - 3.0), Normalize::MinMax).unwrap();
    let back = load_image(&p, false).unwrap();
    let (lo, hi) = back
        .data()
        .iter()
        .fold((1f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
    assert_eq!((lo, hi), (0.0, 1.0));
    assert_eq!(entries(&d), ["c.PNG", "g.png", "m.png"]);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn jpeg_round_trip_is_close_and_detected_by_content() {
    let d = scratch("jpg");
    let (h, w) = (16, 24);
    let smooth = Tensor::from_vec(
        (0..3 * h * w)
            .map(|i| 0.2 + 0.6 * ((i % w) as f32 / w as f32))
            .collect(),
        &[3, h, w],
    )
    .unwrap();
    let p = d.join("s.jpg");
    save_image(&p, &smooth, Normalize::Clip).unwrap();
    assert_eq!(&fs::read(&p).unwrap()[..3], &[0xff, 0xd8, 0xff]);
    // The name says PNG, the content is JPEG: content wins.
    let q = d.join("really_a_jpeg.png");
    fs::rename(&p, &q).unwrap();
    let back = load_image(&q, false).unwrap();
    assert_eq!(back.shape(), &[3, h, w]);
    assert!(back.max_abs_diff(&smooth).unwrap() < 0.03);
    save_image(
        &d.join("g.JPEG"),
        &smooth.reshape(&[3 * h, w]).unwrap(),
        Normalize::Clip,
    )
    .unwrap();
    assert_eq!(
        load_image(&d.join("g.JPEG"), false).unwrap().shape(),
        &[3 * h, w]
    );
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn sixteen_bit_and_alpha_pngs() {
    use image::{ExtendedColorType, ImageEncoder};
    let d = scratch("png16");
    let encode = |name: &str, buf: &[u8], w: u32, h: u32, ct: ExtendedColorType| {
        let p = d.join(name);
        let f = fs::File::create(&p).unwrap();
        image::codecs::png::PngEncoder::new(f)
            .write_image(buf, w, h, ct)
            .unwrap();
        p
    };
    // 16-bit samples are native-endian for the encoder.
    let l16: Vec<u8> = [0u16, 65535, 32768, 1]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    let t = load_image(
        &encode("l16.png", &l16, 2, 2, ExtendedColorType::L16),
        false,
    )
    .unwrap();
    assert_eq!(t.shape(), &[2, 2]);
    assert_eq!(t.data(), &[0.0, 1.0, 32768.0 / 65535.0, 1.0 / 65535.0]);

    let rgba = [255u8, 0, 0, 128, 0, 255, 0, 255];
    let t = load_image(
        &encode("rgba.png", &rgba, 2, 1, ExtendedColorType::Rgba8),
        false,
    )
    .unwrap();
    assert_eq!(t.shape(), &[4, 1, 2]);
    assert_eq!(
        t.data(),
        &[1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 128.0 / 255.0, 1.0]
    );

    let la = [51u8, 0, 102, 255];
    let t = load_image(&encode("la.png", &la, 2, 1, ExtendedColorType::La8), false).unwrap();
    assert_eq!(
        (t.shape(), t.data()),
        (&[1usize, 2][..], &[0.2f32, 0.4][..])
    );
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn sample_images_load() {
    let cam = load_image(&root("assets/camera.png"), false).unwrap();
    assert_eq!(cam.shape(), &[512, 512]);
    let cat = load_image(&root("assets/chelsea.png"), false).unwrap();
    assert_eq!(cat.shape(), &[3, 300, 451]);
    assert!(cat.data().iter().all(|v| (0.0..=1.0).contains(v)));
    let (lo, hi) = cam
        .data()
        .iter()
        .fold((1f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(
        lo < 0.1 && hi > 0.9,
        "a photograph spans the range: {lo}..{hi}"
    );
    assert_eq!(
        load_image(&root("assets/chelsea.png"), true)
            .unwrap()
            .shape(),
        &[300, 451]
    );
}

#[test]
fn broken_images_are_errors() {
    let d = scratch("img-bad");
    let png = fs::read(root("assets/camera.png")).unwrap();
    let p = d.join("cut.png");
    fs::write(&p, &png[..png.len() / 2]).unwrap();
    let e = load_image(&p, false).unwrap_err();
    assert!(matches!(e, Error::Io { op: "image", .. }), "{e}");
    assert!(e.to_string().contains("cut.png"), "{e}");

    let p = d.join("x.png");
    fs::write(&p, npy_to_bytes(&Tensor::scalar(1.0))).unwrap();
    let e = load_image(&p, false).unwrap_err().to_string();
    assert!(e.contains("not a PNG or JPEG"), "{e}");

    // A valid header declaring (2^31 - 1)^2 RGBA pixels, the most PNG allows:
    // refused from the header on any machine, before decoding.
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(0x7fff_ffffu32.to_be_bytes());
    ihdr.extend(0x7fff_ffffu32.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
    big.extend(13u32.to_be_bytes());
    big.extend(&ihdr);
    big.extend(crc32(&ihdr).to_be_bytes());
    let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
    big.extend(8u32.to_be_bytes());
    big.extend(idat);
    big.extend(crc32(idat).to_be_bytes());
    big.extend([0, 0, 0, 0]);
    big.extend(b"IEND");
    big.extend(crc32(b"IEND").to_be_bytes());
    fs::write(&p, &big).unwrap();
    let e = load_image(&p, false).unwrap_err();
    assert!(matches!(e, Error::TooLarge { op: "image", .. }), "{e}");
    assert!(e.to_string().contains("x.png"), "{e}");

    let t = ramp(&[4, 4]);
    let e = save_image(&d.join("a.bmp"), &t, Normalize::MinMax)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'.bmp'"), "{e}");
    let e = save_image(&d.join("noext"), &t, Normalize::MinMax)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no extension"), "{e}");
    let e = save_image(&d.join("a.png"), &ramp(&[2, 4, 4]), Normalize::MinMax).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let e = save_image(&d.join("a.png"), &ramp(&[0, 4]), Normalize::MinMax).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let e = save_image(&d.join("no/dir/a.png"), &t, Normalize::MinMax).unwrap_err();
    assert!(matches!(e, Error::Io { op: "write", .. }), "{e}");
    assert_eq!(entries(&d), ["cut.png", "x.png"]);
    fs::remove_dir_all(&d).unwrap();
}

/// CRC-32 (IEEE), as PNG chunks need.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn atomic_write_replaces_and_leaves_no_temp() {
    let d = scratch("atomic");
    let p = d.join("f.txt");
    write_atomic(&p, b"one two three").unwrap();
    write_atomic(&p, b"four").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"four");
    assert_eq!(entries(&d), ["f.txt"]);
    fs::remove_dir_all(&d).unwrap();
}

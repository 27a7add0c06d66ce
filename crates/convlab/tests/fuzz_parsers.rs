//! The proptest twins of the cargo-fuzz targets `kernel_spec`, `rf_spec`
//! and `image` (fuzz/fuzz_targets/): they run on stable in `cargo test`,
//! and are what `fuzz/smoke.sh` runs when no nightly toolchain is present.
//! Text comes from the parsers' own alphabets so most inputs get past the
//! first character; bytes are mutations of valid files.

use convlab::filters::{kernel_from_spec, parse_kernel};
use convlab::receptive_field::{parse_spec, receptive_fields};
use convlab::{Pair, Tensor};
use proptest::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn check_kernel(r: convlab::Result<Tensor>, s: &str) -> Result<(), TestCaseError> {
    match r {
        Ok(k) => {
            prop_assert_eq!(k.ndim(), 2, "{:?}", s);
            prop_assert!(k.numel() > 0, "{:?}", s);
            prop_assert!(k.data().iter().all(|v| v.is_finite()), "{:?}", s);
        }
        Err(e) => prop_assert!(!e.to_string().contains('\n'), "{}", e),
    }
    Ok(())
}

fn encoded(ext: &str) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("convlab-fuzz-parsers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("x.{ext}"));
    let t = Tensor::arange(3.0 * 7.0 * 5.0)
        .unwrap()
        .reshape(&[3, 7, 5])
        .unwrap();
    convlab::io::save_image(&p, &t, convlab::io::Normalize::MinMax).unwrap();
    let b = std::fs::read(&p).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn kernel_literals_and_names_never_panic(s in "[\\[\\]0-9eE.,+\\- ]{0,32}|[a-z\\-:0-9.e]{0,16}") {
        let r = catch_unwind(AssertUnwindSafe(|| (parse_kernel(&s), kernel_from_spec(&s))));
        prop_assert!(r.is_ok(), "panicked on {:?}", s);
        let (a, b) = r.unwrap();
        check_kernel(a, &s)?;
        check_kernel(b, &s)?;
    }

    #[test]
    fn layer_specs_never_panic(
        s in "((conv|maxpool|avgpool|relu|bn)[0-9x]{0,4}( (s|p|d)[0-9x]{0,3}| ceil| psame){0,3}(, )?){0,4}",
        h in prop_oneof![0usize..100, Just(usize::MAX)], w in 0usize..100,
    ) {
        let r = catch_unwind(|| parse_spec(&s).map(|l| receptive_fields(&l, Pair::from((h, w)))));
        prop_assert!(r.is_ok(), "panicked on {:?} {}x{}", s, h, w);
        match r.unwrap() {
            Err(e) | Ok(Err(e)) => prop_assert!(!e.to_string().contains('\n'), "{}", e),
            Ok(Ok(_)) => {}
        }
    }

    #[test]
    fn image_decoder_never_panics_on_mutated_files(
        png in any::<bool>(), pos in any::<prop::sample::Index>(), byte in any::<u8>(),
        cut in any::<prop::sample::Index>(), gray in any::<bool>(),
    ) {
        let mut b = encoded(if png { "png" } else { "jpg" });
        let i = pos.index(b.len());
        b[i] = byte;
        b.truncate(cut.index(b.len() + 1).max(4));
        let r = catch_unwind(|| convlab::io::image_from_bytes(&b, gray));
        prop_assert!(r.is_ok(), "panicked");
        if let Ok(Ok(t)) = r {
            prop_assert!(t.data().iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }
}

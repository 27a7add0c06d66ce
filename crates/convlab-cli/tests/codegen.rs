//! The release binary's SIMD kernels are compiled as intended: no AVX,
//! AVX2, FMA or AVX-512 intrinsic survives as a function of its own. One
//! that does is called from code compiled without its target feature (a
//! closure or helper left out of line), and every vector operation there
//! becomes a call: a codegen-unit split once did this to the Winograd
//! filter transform and doubled resnet_3x3_512's forward.

use std::process::Command;

#[test]
fn no_vector_intrinsic_is_left_out_of_line() {
    // Unoptimised builds never inline intrinsics; only release builds
    // (CI's `cargo test --release`) are checked.
    if cfg!(debug_assertions) || !cfg!(target_arch = "x86_64") {
        return;
    }
    let Ok(out) = Command::new("nm")
        .args(["-C", env!("CARGO_BIN_EXE_convlab")])
        .output()
    else {
        eprintln!("nm not found: symbol check skipped");
        return;
    };
    assert!(
        out.status.success(),
        "nm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let symbols = String::from_utf8_lossy(&out.stdout);
    assert!(
        symbols.contains("convlab::kernels::"),
        "the binary has no symbols to check (stripped?)"
    );
    let outlined: Vec<&str> = symbols
        .lines()
        .filter(|l| {
            l.contains("core::core_arch::x86::")
                && ["::avx::", "::avx2::", "::fma::", "::avx512"]
                    .iter()
                    .any(|isa| l.contains(isa))
        })
        .collect();
    assert!(
        outlined.is_empty(),
        "out-of-line vector intrinsics:\n{}",
        outlined.join("\n")
    );
}

/// Every ISA-generic kernel body (`*_body::<FMA>`) is inlined into its
/// ISA's `#[target_feature]` entry: one left out of line is compiled for
/// the baseline CPU, where `f32::mul_add` is a call to libm's `fmaf`
/// (the resampling rows and columns were, a fifth of a 2x bilinear
/// upsampling in `fmaf`). Closures inside a body are allowed (they carry
/// no multiply-adds here).
#[test]
fn every_kernel_body_is_inlined_into_its_isa_entry() {
    if cfg!(debug_assertions) || !cfg!(target_arch = "x86_64") {
        return;
    }
    let Ok(out) = Command::new("nm")
        .args(["-C", env!("CARGO_BIN_EXE_convlab")])
        .output()
    else {
        eprintln!("nm not found: symbol check skipped");
        return;
    };
    let symbols = String::from_utf8_lossy(&out.stdout);
    let outlined: Vec<&str> = symbols
        .lines()
        .filter(|l| l.contains("convlab::kernels::") && l.ends_with("_body"))
        .collect();
    assert!(
        outlined.is_empty(),
        "kernel bodies left out of line:\n{}",
        outlined.join("\n")
    );
}

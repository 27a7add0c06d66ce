//! Kernel literals and names (`parse_kernel`, `kernel_from_spec`) on
//! arbitrary text: an `Err` whose message is one line is fine; a panic, a
//! multi-line message or a non-finite / empty kernel is a bug.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    convlab::memory::set_max_bytes(64 << 20);
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // Paths (`*.npy`) would make the fuzzer read random files; the reader has its own target.
    let spec_ok = !s.trim().to_ascii_lowercase().ends_with(".npy");
    let results = [
        Some(convlab::filters::parse_kernel(s)),
        spec_ok.then(|| convlab::filters::kernel_from_spec(s)),
    ];
    for r in results.into_iter().flatten() {
        match r {
            Ok(k) => {
                assert_eq!(k.ndim(), 2, "{s:?}");
                assert!(k.numel() > 0, "{s:?}");
                assert!(k.data().iter().all(|v| v.is_finite()), "{s:?}");
            }
            Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
        }
    }
});

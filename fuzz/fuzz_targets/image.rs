//! PNG/JPEG decoder path on arbitrary bytes, gray and colour: an `Err` is
//! fine; a panic, or an allocation past the memory limit (the decoder's own
//! buffers included), is a bug. Decoded values must lie in 0..1.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    convlab::memory::set_max_bytes(64 << 20);
    for gray in [false, true] {
        if let Ok(t) = convlab::io::image_from_bytes(data, gray) {
            assert!(matches!(t.ndim(), 2 | 3));
            assert!(t.data().iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }
});

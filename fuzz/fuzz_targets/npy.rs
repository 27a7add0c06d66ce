//! `.npy` reader on arbitrary bytes: an `Err` is fine, a panic or an
//! allocation past the (small) memory limit is a bug. A parsed array must
//! survive a write/read round trip unchanged (NaN payloads aside).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // 64 MiB: a header claiming a huge shape must be refused, not allocated.
    convlab::memory::set_max_bytes(64 << 20);
    if let Ok(t) = convlab::io::npy_from_bytes(data) {
        let back = convlab::io::npy_from_bytes(&convlab::io::npy_to_bytes(&t))
            .expect("a tensor we read must read back after writing");
        assert_eq!(back.shape(), t.shape());
        let same = back
            .data()
            .iter()
            .zip(t.data())
            .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
        assert!(same, "round trip changed values");
    }
});

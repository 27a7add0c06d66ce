//! safetensors reader on arbitrary bytes (plain and with metadata): an
//! `Err` is fine, a panic or an allocation past the memory limit is a bug.
//! Parsed tensors must round-trip through the writer.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    convlab::memory::set_max_bytes(64 << 20);
    let _ = convlab::io::safetensors_with_metadata_from_bytes(data);
    if let Ok(all) = convlab::io::safetensors_from_bytes(data) {
        let refs: Vec<(&str, &convlab::Tensor)> =
            all.iter().map(|(n, t)| (n.as_str(), t)).collect();
        // Writing may refuse (e.g. a name the format cannot hold); it must not panic.
        if let Ok(bytes) = convlab::io::safetensors_to_bytes(&refs) {
            let back = convlab::io::safetensors_from_bytes(&bytes)
                .expect("what we wrote must read back");
            assert_eq!(back.len(), all.len());
            for ((n1, t1), (n2, t2)) in back.iter().zip(&all) {
                assert_eq!(n1, n2);
                assert_eq!(t1.shape(), t2.shape());
            }
        }
    }
});

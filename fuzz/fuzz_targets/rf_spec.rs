//! Layer specs (`receptive_field::parse_spec`) on arbitrary text, then
//! `receptive_fields` on an arbitrary input size: errors are one line, never
//! a panic (sizes near usize::MAX included).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, usize, usize)| {
    let (s, h, w) = input;
    match convlab::receptive_field::parse_spec(s) {
        Ok(layers) => {
            if let Err(e) = convlab::receptive_field::receptive_fields(&layers, (h, w).into()) {
                assert!(!e.to_string().contains('\n'), "{e}");
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
});

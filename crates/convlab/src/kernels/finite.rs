//! Whether a buffer holds only finite floats: the dispatcher's test before
//! it lets an algorithm that mixes values across windows (Winograd's tile
//! transforms, FFTs' whole planes) see an operand.

use super::simd::{dispatch_simd, Simd};

#[inline(always)]
unsafe fn all_finite_body<S: Simd>(x: &[f32]) -> bool {
    // `v * 0 + acc` stays 0 while every `v` is finite and turns NaN at the
    // first NaN or infinity, which then sticks: one fused multiply-add per
    // vector, no compare or branch in the loop. Four accumulators keep the
    // adds independent so the scan runs at load speed.
    let l = S::LANES;
    let p = x.as_ptr();
    let mut i = 0;
    // SAFETY (whole body): every load reads `l` floats inside `x` (`i + l
    // <= len` at each one).
    let mut lanes = [0.0f32; 16];
    unsafe {
        let zero = S::zero();
        let mut acc = [S::zero(); 4];
        while i + 4 * l <= x.len() {
            for (k, a) in acc.iter_mut().enumerate() {
                *a = S::fma(S::load(p.add(i + k * l)), zero, *a);
            }
            i += 4 * l;
        }
        while i + l <= x.len() {
            acc[0] = S::fma(S::load(p.add(i)), zero, acc[0]);
            i += l;
        }
        let sum = S::add(S::add(acc[0], acc[1]), S::add(acc[2], acc[3]));
        S::store_n(lanes.as_mut_ptr(), sum, l);
    }
    lanes[..l].iter().all(|v| *v == 0.0) && x[i..].iter().all(|v| v.is_finite())
}

dispatch_simd! {
    /// Whether every float of `x` is finite (no NaN, no infinity).
    ///
    /// # Safety
    /// None beyond the ISA dispatch (the body reads only inside `x`).
    pub unsafe fn all_finite_simd(x: &[f32]) -> bool => all_finite_body
}

/// Whether every float of `x` is finite (no NaN, no infinity).
pub(crate) fn all_finite(x: &[f32]) -> bool {
    // SAFETY: `all_finite_simd` has no contract beyond its ISA dispatch.
    unsafe { all_finite_simd(x) }
}

#[cfg(test)]
mod tests {
    use super::all_finite;

    #[test]
    fn finds_every_non_finite_value_at_every_position() {
        for len in [0usize, 1, 7, 15, 16, 17, 63, 64, 65, 200] {
            let clean = vec![1.5f32; len];
            assert!(all_finite(&clean), "len {len}");
            for at in 0..len {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut v = clean.clone();
                    v[at] = bad;
                    assert!(!all_finite(&v), "len {len}, {bad} at {at}");
                }
            }
        }
        // Large finite values stay finite: `f32::MAX * 0` is 0.
        assert!(all_finite(&[f32::MAX, -f32::MAX, f32::MIN_POSITIVE, -0.0]));
    }
}

//! A minimal SIMD vocabulary for the register-blocked kernels
//! ([`super::ukernel`], [`super::flat`], [`super::winograd`]): one body is
//! written against [`Simd`] and compiled three times, for AVX-512 (16
//! lanes), AVX2+FMA (8 lanes) and portable code (8 lanes in an array),
//! then picked at run time from [`super::isa::isa`].
//!
//! Every method is `unsafe` and `#[inline(always)]`: the AVX variants may
//! only run inside a function compiled with (and a CPU that has) their
//! target features, and they must inline into it to become single
//! instructions.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// One SIMD instruction set: a vector type of `LANES` floats and the few
/// operations the kernels need. Loads and stores are unaligned.
pub(crate) trait Simd: Copy + 'static {
    /// Floats per vector.
    const LANES: usize;
    /// The vector register type.
    type V: Copy;
    /// All lanes zero.
    unsafe fn zero() -> Self::V;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` floats from `p`.
    unsafe fn load(p: *const f32) -> Self::V;
    /// `LANES` floats to `p`.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// A store that bypasses the caches where the ISA has one (`p`
    /// aligned to a whole vector); a plain store otherwise.
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: Self::V) {
        // SAFETY: the caller's contract, as for `store`.
        unsafe { Self::store(p, v) }
    }
    /// Ask for the cache line holding `p` (a hint: never faults, any
    /// address).
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch has no architectural effect.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }
    /// `a * b + c`, fused where the ISA has it.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a + b`.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`.
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;

    /// The first `n <= LANES` lanes of `v` to `p` (writes only those).
    #[inline(always)]
    unsafe fn store_n(p: *mut f32, v: Self::V, n: usize) {
        let mut buf = [0.0f32; 16];
        // SAFETY: buf holds LANES floats; the caller guarantees n at p.
        unsafe {
            Self::store(buf.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n.min(Self::LANES));
        }
    }

    /// The first `n <= LANES` floats at `p` into the first lanes, zeros
    /// in the rest (reads only those).
    #[inline(always)]
    unsafe fn load_n(p: *const f32, n: usize) -> Self::V {
        let mut buf = [0.0f32; 16];
        // SAFETY: buf holds LANES floats; the caller guarantees n at p.
        unsafe {
            std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n.min(Self::LANES));
            Self::load(buf.as_ptr())
        }
    }

    /// Lanes `l < n <= LANES` hold `src[2 * l]`, the rest zero: the even
    /// floats of the `2n - 1` at `src` (reads only those).
    #[inline(always)]
    unsafe fn load_evens_n(src: *const f32, n: usize) -> Self::V {
        let mut buf = [0.0f32; 16];
        // SAFETY: buf holds LANES floats; the caller guarantees 2n - 1 at
        // src.
        unsafe {
            for (l, x) in buf.iter_mut().enumerate().take(n.min(Self::LANES)) {
                *x = *src.add(2 * l);
            }
            Self::load(buf.as_ptr())
        }
    }

    /// `dst[2 * l] = v[l]` for `l < n <= LANES`, writing nothing else.
    #[inline(always)]
    unsafe fn store_evens_n(dst: *mut f32, v: Self::V, n: usize) {
        let mut buf = [0.0f32; 16];
        // SAFETY: buf holds LANES floats; the caller guarantees the n even
        // floats at dst.
        unsafe {
            Self::store(buf.as_mut_ptr(), v);
            for (l, x) in buf.iter().enumerate().take(n.min(Self::LANES)) {
                *dst.add(2 * l) = *x;
            }
        }
    }

    /// Copy `n` floats from `src` to `dst` (not overlapping) in vectors,
    /// the last one partial: for short runs, where a `memcpy` call costs
    /// more than the copy.
    #[inline(always)]
    unsafe fn copy_n(src: *const f32, dst: *mut f32, n: usize) {
        let mut j = 0;
        // SAFETY: the caller guarantees n floats at src and dst.
        unsafe {
            while j + Self::LANES <= n {
                Self::store(dst.add(j), Self::load(src.add(j)));
                j += Self::LANES;
            }
            if j < n {
                Self::store_n(dst.add(j), Self::load_n(src.add(j), n - j), n - j);
            }
        }
    }

    /// Copy `n` floats from `src` to `dst` (not overlapping) around the
    /// caches: plain stores up to `dst`'s first cache line and past its
    /// last whole one, streaming stores of whole lines between, so that no
    /// line is written partly by each kind. Any alignment of either
    /// pointer (the system allocator's large blocks start 16 bytes past a
    /// line); the caller fences ([`stream_fence`]).
    #[inline(always)]
    unsafe fn stream_n(src: *const f32, dst: *mut f32, n: usize) {
        const LINE: usize = 16;
        let head = ((64 - (dst as usize) % 64) % 64 / 4).min(n);
        // SAFETY: the caller guarantees n floats at src and dst; `dst +
        // head` is on a cache line (f32 pointers are 4-byte aligned), so
        // every streamed vector is aligned.
        unsafe {
            Self::copy_n(src, dst, head);
            let mut j = head;
            while j + LINE <= n {
                let mut v = 0;
                while v < LINE {
                    Self::stream(dst.add(j + v), Self::load(src.add(j + v)));
                    v += Self::LANES;
                }
                j += LINE;
            }
            Self::copy_n(src.add(j), dst.add(j), n - j);
        }
    }

    /// Transpose a `LANES x LANES` block: row `i` is the `LANES` floats at
    /// `rows[i]`; `dst[j * LANES + i] = rows[i][j]`.
    #[inline(always)]
    unsafe fn transpose(rows: &[*const f32], dst: *mut f32) {
        // SAFETY: the caller guarantees LANES readable floats per row and
        // LANES * LANES writable at dst.
        unsafe {
            for (i, r) in rows.iter().enumerate().take(Self::LANES) {
                for j in 0..Self::LANES {
                    *dst.add(j * Self::LANES + i) = *r.add(j);
                }
            }
        }
    }

    /// Split `2 * LANES` floats at `src` into even and odd positions:
    /// `even[l] = src[2*l]`, `odd[l] = src[2*l + 1]`.
    #[inline(always)]
    unsafe fn deinterleave2(src: *const f32, even: *mut f32, odd: *mut f32) {
        // SAFETY: the caller guarantees 2*LANES readable floats at src and
        // LANES writable at even and odd.
        unsafe {
            for l in 0..Self::LANES {
                *even.add(l) = *src.add(2 * l);
                *odd.add(l) = *src.add(2 * l + 1);
            }
        }
    }

    /// The inverse of [`Simd::deinterleave2`].
    #[inline(always)]
    unsafe fn interleave2(even: *const f32, odd: *const f32, dst: *mut f32) {
        // SAFETY: as for deinterleave2, the other way round.
        unsafe {
            for l in 0..Self::LANES {
                *dst.add(2 * l) = *even.add(l);
                *dst.add(2 * l + 1) = *odd.add(l);
            }
        }
    }

    /// Split `4 * LANES` floats at `src` by position modulo 4:
    /// `dst[r][l] = src[4*l + r]`, each `dst[r]` a vector's worth of floats.
    #[inline(always)]
    unsafe fn deinterleave4(src: *const f32, dst: [*mut f32; 4]) {
        // SAFETY: the caller guarantees 4*LANES readable floats at src and
        // LANES writable at each dst.
        unsafe {
            for l in 0..Self::LANES {
                for (r, d) in dst.iter().enumerate() {
                    *d.add(l) = *src.add(4 * l + r);
                }
            }
        }
    }

    /// The six columns of `LANES` overlapping 6-wide windows 4 apart (the
    /// Winograd F(4x4,3x3) input tiles of a row): `dst[k][l] = src[4*l + k]`
    /// for `k < 6`, reading `4 * LANES + 2` floats.
    #[inline(always)]
    unsafe fn deinterleave4_6(src: *const f32, dst: [*mut f32; 6]) {
        // SAFETY: as for deinterleave4, plus the two floats past the block
        // (read through a copy of the block shifted by one window).
        unsafe {
            Self::deinterleave4(src, [dst[0], dst[1], dst[2], dst[3]]);
            let mut t = [0.0f32; 64];
            let p = t.as_mut_ptr();
            Self::deinterleave4(src.add(4), [p, p.add(16), p.add(32), p.add(48)]);
            std::ptr::copy_nonoverlapping(p, dst[4], Self::LANES);
            std::ptr::copy_nonoverlapping(p.add(16), dst[5], Self::LANES);
        }
    }

    /// The six overlapping columns of stride-3 windows (Winograd F(3x3,
    /// 4x4) input tiles of a row): `dst[k][l] = src[3*l + k]` for `k < 6`,
    /// reading `3 * LANES + 3` floats.
    #[inline(always)]
    unsafe fn deinterleave3_6(src: *const f32, dst: [*mut f32; 6]) {
        // SAFETY: the caller guarantees the floats read and LANES writable
        // at each dst.
        unsafe {
            for (k, d) in dst.iter().enumerate() {
                for l in 0..Self::LANES {
                    *d.add(l) = *src.add(3 * l + k);
                }
            }
        }
    }

    /// `dst[3*l + r] = src[r][l]` for `r < 3`: a row of 3-wide output tiles.
    #[inline(always)]
    unsafe fn interleave3(src: [*const f32; 3], dst: *mut f32) {
        // SAFETY: LANES readable floats at each src, 3 * LANES writable at
        // dst (caller).
        unsafe {
            for l in 0..Self::LANES {
                for (r, s) in src.iter().enumerate() {
                    *dst.add(3 * l + r) = *s.add(l);
                }
            }
        }
    }

    /// The inverse of [`Simd::deinterleave4`]: `dst[4*l + r] = src[r][l]`.
    #[inline(always)]
    unsafe fn interleave4(src: [*const f32; 4], dst: *mut f32) {
        // SAFETY: as for deinterleave4, the other way round.
        unsafe {
            for l in 0..Self::LANES {
                for (r, s) in src.iter().enumerate() {
                    *dst.add(4 * l + r) = *s.add(l);
                }
            }
        }
    }
}

/// x86-64 AVX-512F: 16 lanes in a zmm register.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    const LANES: usize = 16;
    type V = __m512;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable floats at p.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the caller guarantees 16 writable floats at p.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: __m512) {
        // SAFETY: the caller guarantees 16 writable floats at p, 64-byte
        // aligned (a whole vector).
        unsafe { _mm512_stream_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn store_n(p: *mut f32, v: __m512, n: usize) {
        // SAFETY: masked-off lanes are not written; the caller guarantees n.
        unsafe {
            let mask = if n >= 16 {
                0xFFFF
            } else {
                ((1u32 << n) - 1) as u16
            };
            _mm512_mask_storeu_ps(p, mask, v)
        }
    }
    #[inline(always)]
    unsafe fn load_evens_n(src: *const f32, n: usize) -> __m512 {
        // SAFETY: masked loads read floats [0, 2n - 1) of src only.
        unsafe {
            let m = (2 * n.min(16)).saturating_sub(1);
            let a = Self::load_n(src, m);
            let b = Self::load_n(src.add(16), m.saturating_sub(16));
            let ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            _mm512_permutex2var_ps(a, ie, b)
        }
    }
    #[inline(always)]
    unsafe fn store_evens_n(dst: *mut f32, v: __m512, n: usize) {
        // SAFETY: masked stores write the even floats [0, 2n - 1) of dst
        // only.
        unsafe {
            let n = n.min(16);
            let lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            let hi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
            // Even lanes of the first 2n - 1 floats, as two 16-lane masks.
            let evens = 0x5555_5555u32 & ((1u32 << (2 * n).saturating_sub(1)) - 1);
            _mm512_mask_storeu_ps(dst, evens as u16, _mm512_permutexvar_ps(lo, v));
            _mm512_mask_storeu_ps(
                dst.add(16),
                (evens >> 16) as u16,
                _mm512_permutexvar_ps(hi, v),
            );
        }
    }
    #[inline(always)]
    unsafe fn load_n(p: *const f32, n: usize) -> __m512 {
        // SAFETY: masked-off lanes are not read; the caller guarantees n.
        unsafe {
            let mask = if n >= 16 {
                0xFFFF
            } else {
                ((1u32 << n) - 1) as u16
            };
            _mm512_maskz_loadu_ps(mask, p)
        }
    }
    #[inline(always)]
    unsafe fn transpose(rows: &[*const f32], dst: *mut f32) {
        // 32-bit then 64-bit interleaves within 128-bit lanes, then two
        // rounds of 128-bit block shuffles: 64 shuffles for 256 floats.
        // SAFETY: 16 rows of 16 readable floats, 256 writable at dst.
        unsafe {
            let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(rows[i]));
            let mut a = [_mm512_setzero_ps(); 16];
            for p in 0..8 {
                a[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
                a[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
            }
            let mut b = [_mm512_setzero_ps(); 16];
            for s4 in 0..4 {
                let (a0, a1) = (_mm512_castps_pd(a[4 * s4]), _mm512_castps_pd(a[4 * s4 + 1]));
                let (a2, a3) = (
                    _mm512_castps_pd(a[4 * s4 + 2]),
                    _mm512_castps_pd(a[4 * s4 + 3]),
                );
                b[4 * s4] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
                b[4 * s4 + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
                b[4 * s4 + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
                b[4 * s4 + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
            }
            // b[4s + c], 128-bit lane q: column 4q + c of rows 4s..4s+4.
            for c in 0..4 {
                let x = _mm512_shuffle_f32x4::<0x44>(b[c], b[4 + c]);
                let y = _mm512_shuffle_f32x4::<0xEE>(b[c], b[4 + c]);
                let x2 = _mm512_shuffle_f32x4::<0x44>(b[8 + c], b[12 + c]);
                let y2 = _mm512_shuffle_f32x4::<0xEE>(b[8 + c], b[12 + c]);
                _mm512_storeu_ps(dst.add(c * 16), _mm512_shuffle_f32x4::<0x88>(x, x2));
                _mm512_storeu_ps(dst.add((4 + c) * 16), _mm512_shuffle_f32x4::<0xDD>(x, x2));
                _mm512_storeu_ps(dst.add((8 + c) * 16), _mm512_shuffle_f32x4::<0x88>(y, y2));
                _mm512_storeu_ps(dst.add((12 + c) * 16), _mm512_shuffle_f32x4::<0xDD>(y, y2));
            }
        }
    }
    #[inline(always)]
    unsafe fn deinterleave2(src: *const f32, even: *mut f32, odd: *mut f32) {
        // SAFETY: 32 readable floats at src, 16 writable at even and odd.
        unsafe {
            let (a, b) = (_mm512_loadu_ps(src), _mm512_loadu_ps(src.add(16)));
            let ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            _mm512_storeu_ps(even, _mm512_permutex2var_ps(a, ie, b));
            _mm512_storeu_ps(odd, _mm512_permutex2var_ps(a, io, b));
        }
    }
    #[inline(always)]
    unsafe fn interleave2(even: *const f32, odd: *const f32, dst: *mut f32) {
        // SAFETY: 16 readable floats at even and odd, 32 writable at dst.
        unsafe {
            let (e, o) = (_mm512_loadu_ps(even), _mm512_loadu_ps(odd));
            let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            let hi =
                _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            _mm512_storeu_ps(dst, _mm512_permutex2var_ps(e, lo, o));
            _mm512_storeu_ps(dst.add(16), _mm512_permutex2var_ps(e, hi, o));
        }
    }
    #[inline(always)]
    unsafe fn deinterleave4(src: *const f32, dst: [*mut f32; 4]) {
        // Two-source permutes gather lanes 0..7 from the first 32 floats
        // and 8..15 from the last 32; one block shuffle joins the halves.
        // SAFETY: 64 readable floats at src, 16 writable at each dst.
        unsafe {
            let (a, b) = (_mm512_loadu_ps(src), _mm512_loadu_ps(src.add(16)));
            let (c, d) = (_mm512_loadu_ps(src.add(32)), _mm512_loadu_ps(src.add(48)));
            for (r, out) in dst.iter().enumerate() {
                let r = r as i32;
                let idx = _mm512_setr_epi32(
                    r,
                    r + 4,
                    r + 8,
                    r + 12,
                    r + 16,
                    r + 20,
                    r + 24,
                    r + 28,
                    r,
                    r + 4,
                    r + 8,
                    r + 12,
                    r + 16,
                    r + 20,
                    r + 24,
                    r + 28,
                );
                let lo = _mm512_permutex2var_ps(a, idx, b);
                let hi = _mm512_permutex2var_ps(c, idx, d);
                _mm512_storeu_ps(*out, _mm512_shuffle_f32x4::<0b01_00_01_00>(lo, hi));
            }
        }
    }
    #[inline(always)]
    unsafe fn deinterleave4_6(src: *const f32, dst: [*mut f32; 6]) {
        // Columns 4 and 5 are columns 0 and 1 one window on: a lane shift
        // with the next window's first two floats in the top lane, instead
        // of a second deinterleave (12 more shuffles) through a copy.
        // SAFETY: 66 readable floats at src, 16 writable at each dst.
        unsafe {
            Self::deinterleave4(src, [dst[0], dst[1], dst[2], dst[3]]);
            for k in 0..2 {
                let col = _mm512_castps_si512(_mm512_loadu_ps(dst[k]));
                let next = _mm512_castps_si512(_mm512_set1_ps(*src.add(64 + k)));
                let shifted = _mm512_alignr_epi32::<1>(next, col);
                _mm512_storeu_ps(dst[4 + k], _mm512_castsi512_ps(shifted));
            }
        }
    }
    #[inline(always)]
    unsafe fn deinterleave3_6(src: *const f32, dst: [*mut f32; 6]) {
        // Column k < 3, lane l reads float 3l + k: a two-source permute
        // over the first 32 floats, and for lanes past them a masked
        // permute of the third vector (same indices, taken mod 16).
        // Columns 3..6 are columns 0..3 one window on: a lane shift.
        // SAFETY: 51 readable floats at src, 16 writable at each dst.
        unsafe {
            let (a, b, c) = (
                _mm512_loadu_ps(src),
                _mm512_loadu_ps(src.add(16)),
                _mm512_loadu_ps(src.add(32)),
            );
            let base =
                _mm512_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45);
            let past: [__mmask16; 3] = [0xF800, 0xF800, 0xFC00];
            for (k, &mask) in past.iter().enumerate() {
                let idx = _mm512_add_epi32(base, _mm512_set1_epi32(k as i32));
                let col =
                    _mm512_mask_permutexvar_ps(_mm512_permutex2var_ps(a, idx, b), mask, idx, c);
                _mm512_storeu_ps(dst[k], col);
                let next = _mm512_castps_si512(_mm512_set1_ps(*src.add(48 + k)));
                let shifted = _mm512_alignr_epi32::<1>(next, _mm512_castps_si512(col));
                _mm512_storeu_ps(dst[3 + k], _mm512_castsi512_ps(shifted));
            }
        }
    }
    #[inline(always)]
    unsafe fn interleave3(src: [*const f32; 3], dst: *mut f32) {
        // Output vector q, lane i holds float 16q + i = 3l + r: lane l of
        // source r. Sources 0 and 1 through a two-source permute, source
        // 2's lanes (r == 2) through a masked one-source permute.
        // SAFETY: 16 readable floats at each src, 48 writable at dst.
        unsafe {
            let (a, b, c) = (
                _mm512_loadu_ps(src[0]),
                _mm512_loadu_ps(src[1]),
                _mm512_loadu_ps(src[2]),
            );
            let idx = [
                _mm512_setr_epi32(0, 16, 0, 1, 17, 1, 2, 18, 2, 3, 19, 3, 4, 20, 4, 5),
                _mm512_setr_epi32(21, 5, 6, 22, 6, 7, 23, 7, 8, 24, 8, 9, 25, 9, 10, 26),
                _mm512_setr_epi32(
                    10, 11, 27, 11, 12, 28, 12, 13, 29, 13, 14, 30, 14, 15, 31, 15,
                ),
            ];
            let from_c: [__mmask16; 3] = [0x4924, 0x2492, 0x9249];
            for q in 0..3 {
                let ab = _mm512_permutex2var_ps(a, idx[q], b);
                let v = _mm512_mask_permutexvar_ps(ab, from_c[q], idx[q], c);
                _mm512_storeu_ps(dst.add(16 * q), v);
            }
        }
    }
    #[inline(always)]
    unsafe fn interleave4(src: [*const f32; 4], dst: *mut f32) {
        // Output vector q holds lanes 4q..4q+4 of the four sources: pairs
        // (0, 1) and (2, 3) are permuted into place and blended.
        // SAFETY: 16 readable floats at each src, 64 writable at dst.
        unsafe {
            let p = [
                _mm512_loadu_ps(src[0]),
                _mm512_loadu_ps(src[1]),
                _mm512_loadu_ps(src[2]),
                _mm512_loadu_ps(src[3]),
            ];
            for q in 0..4i32 {
                let b = 4 * q;
                let idx = _mm512_setr_epi32(
                    b,
                    b + 16,
                    b,
                    b + 16,
                    b + 1,
                    b + 17,
                    b + 1,
                    b + 17,
                    b + 2,
                    b + 18,
                    b + 2,
                    b + 18,
                    b + 3,
                    b + 19,
                    b + 3,
                    b + 19,
                );
                let x = _mm512_permutex2var_ps(p[0], idx, p[1]);
                let y = _mm512_permutex2var_ps(p[2], idx, p[3]);
                _mm512_storeu_ps(dst.add(16 * q as usize), _mm512_mask_blend_ps(0xCCCC, x, y));
            }
        }
    }
}

/// x86-64 AVX2 with FMA: 8 lanes in a ymm register.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    const LANES: usize = 8;
    type V = __m256;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable floats at p.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the caller guarantees 8 writable floats at p.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: __m256) {
        // SAFETY: the caller guarantees 8 writable floats at p, 32-byte
        // aligned (a whole vector).
        unsafe { _mm256_stream_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        // SAFETY: the target feature is enabled in the caller (trait contract).
        unsafe { _mm256_mul_ps(a, b) }
    }
}

/// Portable code: 8 lanes in an array (the compiler's baseline vectors).
#[derive(Clone, Copy)]
pub(crate) struct Portable;

impl Simd for Portable {
    const LANES: usize = 8;
    type V = [f32; 8];
    #[inline(always)]
    unsafe fn zero() -> [f32; 8] {
        [0.0; 8]
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> [f32; 8] {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> [f32; 8] {
        // SAFETY: the caller guarantees 8 readable floats at p.
        unsafe { (p as *const [f32; 8]).read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: [f32; 8]) {
        // SAFETY: the caller guarantees 8 writable floats at p.
        unsafe { (p as *mut [f32; 8]).write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn fma(a: [f32; 8], b: [f32; 8], c: [f32; 8]) -> [f32; 8] {
        // A plain multiply and add: without an `fma` target feature,
        // `mul_add` is a slow libm call.
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    unsafe fn add(a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    unsafe fn sub(a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|i| a[i] - b[i])
    }
    #[inline(always)]
    unsafe fn mul(a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|i| a[i] * b[i])
    }
}

/// Define `$name(args) -> ret` that runs `$body::<S>(args)` with `S` the
/// best [`Simd`] of this CPU, compiled with its target features.
macro_rules! dispatch_simd {
    ($(#[$m:meta])* $vis:vis unsafe fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $(#[$m])*
        $vis unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: forwarded from the caller of the outer function.
                    unsafe { $body::<$crate::kernels::simd::Avx512>($($arg),*) }
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: forwarded from the caller of the outer function.
                    unsafe { $body::<$crate::kernels::simd::Avx2>($($arg),*) }
                }
                match $crate::kernels::isa::isa() {
                    // SAFETY: `isa()` returned Avx512 only after detecting
                    // avx512f and fma (which imply avx2) on this CPU; the
                    // rest is the caller's contract.
                    $crate::kernels::isa::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: detected avx2 and fma on this CPU.
                    $crate::kernels::isa::Isa::Avx2Fma => return unsafe { avx2($($arg),*) },
                    $crate::kernels::isa::Isa::Scalar => {}
                }
            }
            // SAFETY: the caller's contract.
            unsafe { $body::<$crate::kernels::simd::Portable>($($arg),*) }
        }
    };
}
pub(crate) use dispatch_simd;

/// Orders every earlier streaming store ([`Simd::stream`]) before any
/// later store, so that whoever is told the results are ready sees them.
#[inline]
pub(crate) fn stream_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` has no preconditions (SSE is baseline on x86_64).
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

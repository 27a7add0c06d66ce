//! Element types found in files, and their conversion to f32. Shared by the
//! npy and safetensors readers so both convert the same way (integers round
//! to the nearest f32, as `torch.Tensor.float()` does).

use crate::error::Result;
use crate::memory;

/// An element type of a stored array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    BF16,
    F32,
    F64,
}

impl Elem {
    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            Elem::Bool | Elem::U8 | Elem::I8 => 1,
            Elem::U16 | Elem::I16 | Elem::F16 | Elem::BF16 => 2,
            Elem::U32 | Elem::I32 | Elem::F32 => 4,
            Elem::U64 | Elem::I64 | Elem::F64 => 8,
        }
    }
}

/// Converts `bytes` (a whole number of elements, checked by the caller) to
/// f32 after the allocation guard of `op`.
pub(crate) fn to_f32(
    op: &'static str,
    elem: Elem,
    big_endian: bool,
    bytes: &[u8],
) -> Result<Vec<f32>> {
    let size = elem.size();
    debug_assert_eq!(bytes.len() % size, 0);
    memory::check_f32(op, bytes.len() / size)?;
    macro_rules! conv {
        ($n:literal, |$a:ident| $e:expr) => {
            bytes
                .chunks_exact($n)
                .map(|c| {
                    let mut $a = [0u8; $n];
                    $a.copy_from_slice(c);
                    if big_endian {
                        $a.reverse();
                    }
                    $e
                })
                .collect()
        };
    }
    Ok(match elem {
        Elem::Bool => bytes.iter().map(|&b| f32::from(u8::from(b != 0))).collect(),
        Elem::U8 => bytes.iter().map(|&b| f32::from(b)).collect(),
        Elem::I8 => bytes.iter().map(|&b| f32::from(b as i8)).collect(),
        Elem::U16 => conv!(2, |a| f32::from(u16::from_le_bytes(a))),
        Elem::I16 => conv!(2, |a| f32::from(i16::from_le_bytes(a))),
        Elem::F16 => conv!(2, |a| f16_to_f32(u16::from_le_bytes(a))),
        Elem::BF16 => conv!(2, |a| f32::from_bits(
            u32::from(u16::from_le_bytes(a)) << 16
        )),
        Elem::U32 => conv!(4, |a| u32::from_le_bytes(a) as f32),
        Elem::I32 => conv!(4, |a| i32::from_le_bytes(a) as f32),
        Elem::F32 => conv!(4, |a| f32::from_le_bytes(a)),
        Elem::U64 => conv!(8, |a| u64::from_le_bytes(a) as f32),
        Elem::I64 => conv!(8, |a| i64::from_le_bytes(a) as f32),
        Elem::F64 => conv!(8, |a| f64::from_le_bytes(a) as f32),
    })
}

/// IEEE 754 binary16 to binary32 (exact: every half is a float).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        // Subnormal half: value man * 2^-24, normal as an f32.
        (0, _) => {
            let shift = man.leading_zeros() - 21; // brings the top set bit to bit 10
            let man = (man << shift) & 0x3ff;
            let exp = 127 - 15 + 1 - shift;
            sign | (exp << 23) | (man << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0200), 2f32.powi(-15));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }

    #[test]
    fn integers_and_endianness() {
        let le = to_f32("t", Elem::I16, false, &[0xfe, 0xff, 0x00, 0x01]).unwrap();
        assert_eq!(le, [-2.0, 256.0]);
        let be = to_f32("t", Elem::I16, true, &[0xff, 0xfe, 0x01, 0x00]).unwrap();
        assert_eq!(be, [-2.0, 256.0]);
        let u = to_f32("t", Elem::U64, false, &u64::MAX.to_le_bytes()).unwrap();
        assert_eq!(u, [18_446_744_073_709_551_616.0]);
        assert_eq!(
            to_f32("t", Elem::Bool, false, &[0, 1, 2]).unwrap(),
            [0.0, 1.0, 1.0]
        );
        let bf = to_f32("t", Elem::BF16, false, &[0x80, 0x3f]).unwrap();
        assert_eq!(bf, [1.0]);
    }
}

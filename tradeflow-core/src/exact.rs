//! Exact decimal arithmetic: a sum or product that `rust_decimal` can hold exactly, or `None`.
//!
//! `rust_decimal`'s own `checked_add`/`checked_mul` return `None` only when the *integer part*
//! overflows its 96-bit mantissa; when the digits after the point do not fit they silently round
//! to fewer decimal places (the issue's case 8: a 28-place price × 99 plus 999999.99 lost six
//! places). Money is exact (SPEC §3), so these refuse instead: the result must keep the scale the
//! exact value has (the larger of the two for a sum, their sum for a product).

use rust_decimal::Decimal;

/// Largest scale `rust_decimal` holds.
const MAX_SCALE: u32 = 28;

/// `a + b` exactly, at the larger of the two scales, or `None` when `rust_decimal` cannot hold
/// the exact sum (it would overflow or round).
///
/// Computed in `i128` on the mantissas aligned to the common scale, not by `rust_decimal` (whose
/// scale on the way out is not a reliable sign of rounding: it drops the scale of a zero operand).
/// Conservative in one corner money never reaches: operands of opposite signs whose alignment
/// overflows `i128` are refused even if they would cancel.
pub fn checked_exact_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    let scale = a.scale().max(b.scale());
    let aligned = |d: Decimal| 10i128.checked_pow(scale - d.scale())?.checked_mul(d.mantissa());
    decimal(aligned(a)?.checked_add(aligned(b)?)?, scale)
}

/// `a × b` exactly, at the sum of the two scales (less any trailing zeros past 28 places), or
/// `None` when `rust_decimal` cannot hold the exact product.
pub fn checked_exact_mul(a: Decimal, b: Decimal) -> Option<Decimal> {
    decimal(a.mantissa().checked_mul(b.mantissa())?, a.scale() + b.scale())
}

/// `a − b` exactly (see [`checked_exact_add`]; negation is exact).
pub fn checked_exact_sub(a: Decimal, b: Decimal) -> Option<Decimal> {
    checked_exact_add(a, -b)
}

/// `qty × price` exactly, at the price's scale (a position or matched quantity, which may exceed
/// `i64` as a difference of two `i64` sums), or `None`.
pub fn checked_exact_mul_qty(qty: i128, price: Decimal) -> Option<Decimal> {
    decimal(price.mantissa().checked_mul(qty)?, price.scale())
}

/// `mantissa × 10^-scale` when `rust_decimal` holds it exactly (a 96-bit mantissa, at most 28
/// places; trailing zeros past 28 places are dropped, which is exact).
fn decimal(mut mantissa: i128, mut scale: u32) -> Option<Decimal> {
    while scale > MAX_SCALE && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    (scale <= MAX_SCALE && mantissa.unsigned_abs() < 1u128 << 96)
        .then(|| Decimal::try_from_i128_with_scale(mantissa, scale).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use proptest::prelude::*;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn the_issue_case_8_is_refused_not_rounded() {
        // 28 places × 99 needs a 97-bit mantissa: rust_decimal alone rounds it to 27 places, and
        // the row's sum then to 22 (it stored 1000012.2122221122222222112222).
        let price = d("0.1234567890123456789012345678");
        let rounded = price.checked_mul(Decimal::from(99)).unwrap();
        assert_eq!(rounded.to_string(), "12.222222112222222211222222212");
        assert_eq!(checked_exact_mul(price, Decimal::from(99)), None);
        assert_eq!(rounded.checked_add(d("999999.99")).unwrap().to_string(), "1000012.2122221122222222112222");
        assert_eq!(checked_exact_add(rounded, d("999999.99")), None);
        assert_eq!(checked_exact_add(d("0.00"), d("1")), Some(d("1.00")));
        assert_eq!(checked_exact_mul(d("1.25"), Decimal::ZERO), Some(d("0.00")));
        assert_eq!(checked_exact_mul(d("0.0000000000000000000000000001"), d("0.1")), None);
        assert_eq!(checked_exact_add(d("1.5"), d("2.25")), Some(d("3.75")));
        assert_eq!(checked_exact_mul(d("1.5"), d("2.00")).unwrap().to_string(), "3.000");
        assert_eq!(checked_exact_add(Decimal::MAX, Decimal::ONE), None);
        assert_eq!(checked_exact_mul(Decimal::MAX, Decimal::TWO), None);
    }

    /// The exact value when `rust_decimal` can hold it at `scale`.
    fn fits(mantissa: Option<i128>, scale: u32) -> Option<(i128, u32)> {
        mantissa.filter(|m| m.unsigned_abs() < 1u128 << 96 && scale <= 28).map(|m| (m, scale))
    }

    fn shape(d: Option<Decimal>) -> Option<(i128, u32)> {
        d.map(|d| (d.mantissa(), d.scale()))
    }

    proptest! {
        /// What comes back is the exact value, and it comes back whenever `rust_decimal` can hold
        /// it (checked in i128 at the common scale).
        #[test]
        fn exact_whenever_representable(a in any::<i64>(), sa in 0u32..=28, b in any::<i64>(), sb in 0u32..=28) {
            let (x, y) = (Decimal::new(a, sa), Decimal::new(b, sb));
            let scale = sa.max(sb);
            let up = |m: i64, s: u32| 10i128.checked_pow(scale - s).and_then(|p| p.checked_mul(i128::from(m)));
            let sum = up(a, sa).zip(up(b, sb)).and_then(|(p, q)| p.checked_add(q));
            prop_assert_eq!(shape(checked_exact_add(x, y)), fits(sum, scale));
            let product = i128::from(a).checked_mul(i128::from(b));
            if sa + sb <= 28 {
                prop_assert_eq!(shape(checked_exact_mul(x, y)), fits(product, sa + sb));
            } else if let Some(p) = checked_exact_mul(x, y) {
                // Only trailing zeros dropped: the same value.
                let k = sa + sb - p.scale();
                prop_assert_eq!(p.mantissa().checked_mul(10i128.pow(k)), product);
            }
        }
    }
}

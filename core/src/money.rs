//! Money: `rust_decimal::Decimal` whole yen, truncated as 第28条3項 says
//! ("1円未満の端数が生じたときはこれを切り捨てます"). No `f64` anywhere near it.

use rust_decimal::Decimal;

/// Drops every fraction of a yen (toward zero, 第28条3項).
pub fn truncate_yen(amount: Decimal) -> Decimal {
    amount.trunc()
}

/// Formats `12345` as `¥12,345` (negative as `-¥12,345`).
pub fn format_yen(amount: Decimal) -> String {
    let neg = amount.is_sign_negative() && !amount.is_zero();
    let digits = amount.abs().trunc().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{}¥{}", if neg { "-" } else { "" }, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn truncates_toward_zero() {
        assert_eq!(truncate_yen(dec!(1234.99)), dec!(1234));
        assert_eq!(truncate_yen(dec!(-10.5)), dec!(-10));
    }

    #[test]
    fn formats_with_separators() {
        assert_eq!(format_yen(dec!(0)), "¥0");
        assert_eq!(format_yen(dec!(999)), "¥999");
        assert_eq!(format_yen(dec!(1000)), "¥1,000");
        assert_eq!(format_yen(dec!(1234567)), "¥1,234,567");
        assert_eq!(format_yen(dec!(-20000)), "-¥20,000");
    }
}

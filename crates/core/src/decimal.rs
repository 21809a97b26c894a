//! Exact decimal text → scaled i128, for sources that hand out decimals as text.

use crate::{Error, Result};

pub fn is_decimal_literal(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let mut parts = body.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next().unwrap_or("");
    (!int.is_empty() || !frac.is_empty())
        && int.chars().all(|c| c.is_ascii_digit())
        && frac.chars().all(|c| c.is_ascii_digit())
}

/// Parses `-123.4500` into the integer of a decimal(precision, scale). Refuses, rather than
/// rounds, a value with more non-zero fraction digits than `scale` or more digits than
/// `precision`.
pub fn parse_scaled(text: &str, precision: u8, scale: i8) -> Result<i128> {
    let text = text.trim();
    if !is_decimal_literal(text) {
        return Err(Error::Internal(format!(
            "\"{text}\" is not a decimal number"
        )));
    }
    let negative = text.starts_with('-');
    let body = text.trim_start_matches(['-', '+']);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let scale = scale.max(0) as usize;
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > scale {
        return Err(Error::Internal(format!(
            "{text} has more than {scale} decimal places"
        )));
    }
    let mut value: i128 = 0;
    let digits = int
        .chars()
        .chain(frac.chars().chain(std::iter::repeat('0')).take(scale));
    for c in digits {
        let d = i128::from(c as u8 - b'0');
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(d))
            .ok_or_else(|| Error::Internal(format!("{text} is too large")))?;
    }
    if value >= 10i128.pow(u32::from(precision)) {
        return Err(Error::Internal(format!(
            "{text} has more than {precision} digits"
        )));
    }
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        assert_eq!(parse_scaled("12.34", 10, 2).unwrap(), 1234);
        assert_eq!(parse_scaled("-0.5", 10, 2).unwrap(), -50);
        assert_eq!(parse_scaled("7", 10, 3).unwrap(), 7000);
        assert_eq!(parse_scaled("1.2300", 10, 2).unwrap(), 123);
        assert!(parse_scaled("1.234", 10, 2).is_err());
        assert!(parse_scaled("123456", 5, 0).is_err());
        assert!(parse_scaled("abc", 5, 0).is_err());
    }
}

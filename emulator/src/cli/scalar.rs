//! Scalar values in QEMU's spellings: booleans, numbers, sizes (pure).
#![forbid(unsafe_code)]

/// `on|yes|true|y` / `off|no|false|n` (QEMU's `qapi_bool_parse`).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "on" | "yes" | "true" | "y" => Some(true),
        "off" | "no" | "false" | "n" => Some(false),
        _ => None,
    }
}

/// An unsigned integer: decimal, `0x`/`0X` hex, or octal with a leading 0
/// (C `strtoull` base 0, without whitespace or sign).
pub fn parse_u64(text: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            (hex, 16)
        } else if text.len() > 1 && text.starts_with('0') {
            (&text[1..], 8)
        } else {
            (text, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// A signed integer: an optional leading `-` before [`parse_u64`] syntax.
pub fn parse_i64(text: &str) -> Option<i64> {
    match text.strip_prefix('-') {
        Some(rest) => {
            let v = parse_u64(rest)?;
            if v == 1u64 << 63 {
                Some(i64::MIN)
            } else {
                i64::try_from(v).ok().map(|v| -v)
            }
        }
        None => i64::try_from(parse_u64(text)?).ok(),
    }
}

/// A size as QEMU's `qemu_strtosz`: a decimal number (a fraction only with
/// a unit suffix) or a hex integer, then an optional suffix
/// `B K M G T P E` (either case, powers of 1024). `default_unit` multiplies
/// a number written without a suffix (`-m 128` means MiB).
pub fn parse_size(text: &str, default_unit: u64) -> Option<u64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        let end = hex
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(hex.len());
        let unit = unit_of(&hex[end..], default_unit)?;
        if end == 0 {
            return None;
        }
        return u64::from_str_radix(&hex[..end], 16).ok()?.checked_mul(unit);
    }
    let end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(end);
    let unit = unit_of(suffix, default_unit)?;
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (number, None),
    };
    if int_part.is_empty() || !int_part.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let whole = int_part.parse::<u64>().ok()?.checked_mul(unit)?;
    let Some(frac) = frac_part else {
        return Some(whole);
    };
    if unit == 1 || frac.is_empty() || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // Fraction of the unit, truncated toward zero, computed exactly with at
    // most 18 fractional digits (units are at most 2^60).
    let digits = &frac[..frac.len().min(18)];
    let numerator = u128::from(digits.parse::<u64>().ok()?);
    let denominator = 10u128.pow(u32::try_from(digits.len()).ok()?);
    let part = u64::try_from(numerator * u128::from(unit) / denominator).ok()?;
    whole.checked_add(part)
}

/// The multiplier of a size suffix; empty means `default_unit`.
fn unit_of(suffix: &str, default_unit: u64) -> Option<u64> {
    let mut chars = suffix.chars();
    let Some(c) = chars.next() else {
        return Some(default_unit);
    };
    if chars.next().is_some() {
        return None;
    }
    let shift = match c.to_ascii_uppercase() {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        'P' => 50,
        'E' => 60,
        _ => return None,
    };
    Some(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools() {
        for t in ["on", "yes", "true", "y"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["off", "no", "false", "n"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        for bad in ["", "ON", "1", "0", "onn"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("244"), Some(244));
        assert_eq!(parse_u64("0xf4"), Some(0xf4));
        assert_eq!(parse_u64("0XF4"), Some(0xf4));
        assert_eq!(parse_u64("0364"), Some(0o364));
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "0x",
            "09",
            "1a",
            " 1",
            "+1",
            "-1",
            "18446744073709551616",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad}");
        }
        assert_eq!(parse_i64("-1"), Some(-1));
        assert_eq!(parse_i64("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64("9223372036854775808"), None);
        assert_eq!(parse_i64("-"), None);
    }

    #[test]
    fn sizes_as_qemu_m_option() {
        const M: u64 = 1 << 20;
        assert_eq!(parse_size("128", M), Some(128 * M));
        assert_eq!(parse_size("128M", M), Some(128 * M));
        assert_eq!(parse_size("128m", M), Some(128 * M));
        assert_eq!(parse_size("1G", M), Some(1024 * M));
        assert_eq!(parse_size("1.5G", M), Some(1536 * M));
        assert_eq!(parse_size("0.5M", M), Some(M / 2));
        assert_eq!(parse_size("524288K", M), Some(512 * M));
        assert_eq!(parse_size("134217728B", M), Some(128 * M));
        assert_eq!(parse_size("0x10", M), Some(16 * M));
        assert_eq!(parse_size("0x10M", M), Some(16 * M));
        assert_eq!(parse_size("0x1B", 1), Some(0x1b));
        assert_eq!(parse_size("512", 1), Some(512));
        for bad in [
            "", "M", "1.5", "1.G", ".5G", "1Q", "abc", "1GG", "17E", "-1", "0x",
        ] {
            assert_eq!(parse_size(bad, 1), None, "{bad}");
        }
        assert_eq!(parse_size("16E", 1), None);
        assert_eq!(parse_size("15E", 1), Some(15 << 60));
    }
}

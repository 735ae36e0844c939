//! Value conversions between Web API text and Arrow's integers: decimals as scaled integers,
//! instants as microseconds since the Unix epoch, dates as days since it. Used by the decoder
//! (text → Arrow) and by filter pushdown (Arrow literal → OData literal).

/// Parses a JSON number's text (`-12.5`, `1E+3`, `7`) as an integer scaled by `10^scale`,
/// rounding half away from zero beyond the scale. `None` if it is not a number or overflows.
pub fn parse_decimal(text: &str, scale: u8) -> Option<i128> {
    plain_decimal(text.as_bytes(), scale).or_else(|| any_decimal(text, scale))
}

/// [`parse_decimal`] of bytes.
#[inline]
pub(crate) fn decimal_bytes(text: &[u8], scale: u8) -> Option<i128> {
    plain_decimal(text, scale).or_else(|| any_decimal(std::str::from_utf8(text).ok()?, scale))
}

/// A JSON integer's bytes (`-12`): one pass for up to 18 digits; `None` for anything else.
#[inline]
pub(crate) fn plain_int(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(if negative { -v } else { v })
}

/// [`parse_decimal`] for every shape: sign, exponent, rounding, surrounding spaces.
fn any_decimal(text: &str, scale: u8) -> Option<i128> {
    let text = text.trim();
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let digits = || int_part.bytes().chain(frac_part.bytes());
    if !digits().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The value is digits × 10^(exponent - frac_len); we want it × 10^scale.
    let shift = i64::from(exponent) - frac_part.len() as i64 + i64::from(scale);
    let all = int_part.len() + frac_part.len();
    let drop = if shift >= 0 { 0 } else { usize::try_from(shift.unsigned_abs()).unwrap_or(usize::MAX) };
    if drop > all {
        // Smaller than half a unit of the last kept digit.
        return Some(0);
    }
    let keep = all - drop;
    let mut value: i128 = 0;
    for b in digits().take(keep) {
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    if shift > 0 {
        if shift > 38 {
            return if value == 0 { Some(0) } else { None };
        }
        value = value.checked_mul(10i128.checked_pow(shift as u32)?)?;
    } else if digits().nth(keep).is_some_and(|b| b >= b'5') {
        value = value.checked_add(1)?;
    }
    Some(if negative { -value } else { value })
}

/// The common shape, `[-]digits[.digits]` with at most 18 digits and no more decimals than
/// `scale`, in one pass without rounding; `None` sends anything else to the general parser.
#[inline]
fn plain_decimal(b: &[u8], scale: u8) -> Option<i128> {
    let (negative, b) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    let (mut value, mut digits, mut decimals) = (0u64, 0u32, None::<u32>);
    for &c in b {
        match c {
            b'0'..=b'9' => {
                value = value * 10 + u64::from(c - b'0');
                digits += 1;
                if let Some(d) = &mut decimals {
                    *d += 1;
                }
            }
            b'.' if decimals.is_none() => decimals = Some(0),
            _ => return None,
        }
        if digits > 18 {
            return None;
        }
    }
    let decimals = decimals.unwrap_or(0);
    if digits == 0 || decimals > u32::from(scale) {
        return None;
    }
    let value = i128::from(value).checked_mul(10i128.checked_pow(u32::from(scale) - decimals)?)?;
    Some(if negative { -value } else { value })
}

/// Formats a scaled integer as decimal text with exactly `scale` digits after the point.
pub fn format_decimal(value: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut s = value.to_string();
        for _ in 0..(-i32::from(scale)) {
            s.push('0');
        }
        return s;
    }
    let p = 10i128.pow(u32::from(scale.unsigned_abs()));
    let sign = if value < 0 { "-" } else { "" };
    let a = value.unsigned_abs();
    let p = p.unsigned_abs();
    format!("{sign}{}.{:0width$}", a / p, a % p, width = scale as usize)
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn num(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn date_parts(b: &[u8]) -> Option<(i64, u32, u32)> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some((i64::from(y), m, d))
}

/// `YYYY-MM-DD` (optionally followed by a time, which is ignored) → days since the epoch.
pub fn parse_date_days(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    let (y, m, d) = date_parts(b)?;
    if b.len() > 10 && b[10] != b'T' && b[10] != b' ' {
        return None;
    }
    i32::try_from(days_from_civil(y, m, d)).ok()
}

/// An ISO-8601 instant (`2024-02-29T23:59:59Z`, `…T23:59:59.1234567+02:00`, or without a zone,
/// read as UTC) → microseconds since the epoch.
pub fn parse_timestamp_micros(s: &str) -> Option<i64> {
    timestamp_micros(s.as_bytes())
}

/// [`parse_timestamp_micros`] of bytes (anything but ASCII is refused).
pub(crate) fn timestamp_micros(b: &[u8]) -> Option<i64> {
    let (y, m, d) = date_parts(b)?;
    if b.len() < 19 || (b[10] != b'T' && b[10] != b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hh, mm, ss) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            micros *= 10;
        }
    }
    let offset_secs: i64 = match b.get(i) {
        None => 0,
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let oh = i64::from(num(&b[i + 1..i + 3])?);
            let om = i64::from(num(&b[i + 4..i + 6])?);
            let o = oh * 3600 + om * 60;
            if sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, m, d);
    let secs = days * 86_400 + i64::from(hh) * 3600 + i64::from(mm) * 60 + i64::from(ss) - offset_secs;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// Microseconds since the epoch → `YYYY-MM-DDTHH:MM:SSZ`, when they are whole seconds.
pub fn format_timestamp_whole_seconds(micros: i64) -> Option<String> {
    if micros % 1_000_000 != 0 {
        return None;
    }
    let secs = micros / 1_000_000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(1..=9999).contains(&y) {
        return None;
    }
    Some(format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60))
}

/// Days since the epoch → `YYYY-MM-DD`.
pub fn format_date(days: i32) -> Option<String> {
    let (y, m, d) = civil_from_days(i64::from(days));
    (1..=9999).contains(&y).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("12.5", 4), Some(125_000));
        assert_eq!(parse_decimal("-0.00005", 4), Some(-1));
        assert_eq!(parse_decimal("0.00004", 4), Some(0));
        assert_eq!(parse_decimal("1E+3", 2), Some(100_000));
        assert_eq!(parse_decimal("1.5e-1", 2), Some(15));
        assert_eq!(parse_decimal("7", 0), Some(7));
        assert_eq!(parse_decimal("922337203685477.1234", 4), Some(9_223_372_036_854_771_234));
        assert_eq!(parse_decimal("x", 2), None);
        assert_eq!(parse_decimal("", 2), None);
        // The one-pass parser agrees with the general one wherever it answers.
        for text in ["0", "-0", "12.", ".5", "-.5", "5591638.16", "999999999999999999", "1.0000000000", "-3.1400"] {
            for scale in [0u8, 2, 4, 10, 20] {
                if let Some(v) = plain_decimal(text.as_bytes(), scale) {
                    assert_eq!(Some(v), any_decimal(text, scale), "{text} at scale {scale}");
                }
            }
        }
        assert_eq!(plain_decimal(b"1.005", 2), None, "rounding goes to the general parser");
        assert_eq!(decimal_bytes(b"1.005", 2), Some(101));
        for (text, v) in [("0", Some(0)), ("-17", Some(-17)), ("999999999999999999", Some(999_999_999_999_999_999))] {
            assert_eq!(plain_int(text.as_bytes()), v, "{text}");
        }
        for text in ["", "-", "1.0", "1e3", "9999999999999999999", "+1", "1-"] {
            assert_eq!(plain_int(text.as_bytes()), None, "{text}");
        }
        assert_eq!(parse_decimal("1.005", 2), Some(101));
        assert_eq!(format_decimal(-125_000, 4), "-12.5000");
        assert_eq!(format_decimal(5, 2), "0.05");
        assert_eq!(format_decimal(5, 0), "5");
    }

    #[test]
    fn dates_and_instants() {
        assert_eq!(parse_date_days("1970-01-01"), Some(0));
        assert_eq!(parse_date_days("2024-02-29"), Some(19_782));
        assert_eq!(parse_date_days("1969-12-31"), Some(-1));
        assert_eq!(parse_date_days("2024-13-01"), None);
        assert_eq!(format_date(19_782).as_deref(), Some("2024-02-29"));
        assert_eq!(parse_timestamp_micros("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_timestamp_micros("1970-01-01T02:00:01.5+02:00"), Some(1_500_000));
        assert_eq!(parse_timestamp_micros("1970-01-01T00:00:00.1234567Z"), Some(123_456));
        assert_eq!(parse_timestamp_micros("1970-01-01"), None);
        for micros in [0i64, 1_709_251_199_000_000, -86_400_000_000] {
            let s = format_timestamp_whole_seconds(micros).unwrap();
            assert_eq!(parse_timestamp_micros(&s), Some(micros));
        }
        assert_eq!(format_timestamp_whole_seconds(1), None);
        for d in [-1000i64, 0, 738_000 - 719_468, 100_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}

//! Date / DateTimeOffset / GUID literal recognition and civil-calendar arithmetic.

use crate::ast::{Date, DateTimeOffset};

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, d| acc.checked_mul(10)?.checked_add(u32::from(d - b'0')))
}

/// True when `b` starts with the shape `dddd-dd-dd`.
pub(crate) fn looks_like_date(b: &[u8]) -> bool {
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

/// Parses exactly `YYYY-MM-DD` with a valid calendar date.
pub(crate) fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || !looks_like_date(b) {
        return None;
    }
    let y = digits(&b[..4])?;
    let m = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    if y == 0 || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(Date { year: y as u16, month: m as u8, day: d as u8 })
}

/// Parses `YYYY-MM-DDThh:mm[:ss[.f{1,7}]](Z|z|±hh:mm)`.
pub(crate) fn parse_dto(s: &str) -> Option<DateTimeOffset> {
    let b = s.as_bytes();
    if b.len() < 17 || !b.is_ascii() {
        return None;
    }
    let date = parse_date(&s[..10])?;
    if b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let mut i = 16;
    let mut second = 0;
    let mut nanosecond = 0;
    if b.get(i) == Some(&b':') {
        second = digits(b.get(i + 1..i + 3)?)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let n = j - start;
            if n == 0 || n > 7 {
                return None;
            }
            nanosecond = digits(&b[start..j])? * 10u32.pow(9 - n as u32);
            i = j;
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let offset_minutes: i32 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(&b[i + 1..i + 3])?;
            let om = digits(&b[i + 4..i + 6])?;
            if om > 59 || oh * 60 + om > 14 * 60 {
                return None;
            }
            let total = (oh * 60 + om) as i32;
            if *sign == b'-' { -total } else { total }
        }
        _ => return None,
    };
    Some(DateTimeOffset {
        date,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        nanosecond,
        offset_minutes: offset_minutes as i16,
        text: s.to_string(),
    })
}

/// If `s[i..]` starts with `8-4-4-4-12` hex digits, the end offset.
pub(crate) fn guid_at(s: &str, i: usize) -> Option<usize> {
    let b = s.as_bytes().get(i..i + 36)?;
    for (k, c) in b.iter().enumerate() {
        let ok = match k {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        };
        if !ok {
            return None;
        }
    }
    Some(i + 36)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("2024-02-29"), Some(Date { year: 2024, month: 2, day: 29 }));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("1900-02-29"), None);
        assert!(parse_date("2000-02-29").is_some());
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(parse_date("2023-00-01"), None);
        assert_eq!(parse_date("2023-04-31"), None);
        assert_eq!(parse_date("0000-01-01"), None);
        assert_eq!(parse_date("2023-1-01"), None);
        assert_eq!(parse_date("2023-01-011"), None);
    }

    #[test]
    fn date_time_offsets() {
        let d = parse_dto("2023-01-01T00:00:00Z").unwrap();
        assert_eq!((d.hour, d.minute, d.second, d.offset_minutes), (0, 0, 0, 0));
        let d = parse_dto("2023-01-01T10:30:15.1234567+05:30").unwrap();
        assert_eq!(d.nanosecond, 123_456_700);
        assert_eq!(d.offset_minutes, 330);
        let d = parse_dto("2023-01-01T10:30-08:00").unwrap();
        assert_eq!((d.second, d.offset_minutes), (0, -480));
        assert!(parse_dto("2023-01-01T10:30:00z").is_some());
        assert!(parse_dto("2023-01-01T10:30:00+14:00").is_some());
        assert!(parse_dto("2023-01-01T10:30:00+14:01").is_none());
        assert!(parse_dto("2023-01-01T10:30:00").is_none());
        assert!(parse_dto("2023-01-01T24:00:00Z").is_none());
        assert!(parse_dto("2023-01-01T10:60:00Z").is_none());
        assert!(parse_dto("2023-01-01T10:00:60Z").is_none());
        assert!(parse_dto("2023-01-01T10:00:00.Z").is_none());
        assert!(parse_dto("2023-01-01T10:00:00.12345678Z").is_none());
        assert!(parse_dto("2023-01-01T10:00:00Zx").is_none());
        assert!(parse_dto("2023-01-01T10:00:00+0100").is_none());
        assert!(parse_dto("2023-01-01t10:00:00Z").is_none());
        assert!(parse_dto("2023-02-30T10:00:00Z").is_none());
    }

    #[test]
    fn guids() {
        let s = "x 7a914942-34cb-ed11-b596-0022481d68cd)";
        assert_eq!(guid_at(s, 2), Some(38));
        assert_eq!(guid_at(s, 1), None);
        assert_eq!(guid_at("7a914942-34cb-ed11-b596-0022481d68c", 0), None);
        assert_eq!(guid_at("7a914942x34cb-ed11-b596-0022481d68cd", 0), None);
        assert_eq!(guid_at("é", 1), None);
    }

    #[test]
    fn civil_round_trip() {
        for z in [-800_000i64, -1, 0, 1, 59, 60, 10_957, 19_358, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(19_358), (2023, 1, 1));
    }
}

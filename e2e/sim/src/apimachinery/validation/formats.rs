//! The string formats kube-apiserver checks in CRD schemas (kube-openapi's `strfmt.Default`
//! registry plus `date`, `date-time`/`datetime` and `duration`). Formats it does not know are
//! ignored, as the API server strips unsupported formats from CRD schemas.

use regex::Regex;
use std::sync::OnceLock;

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("static format regex compiles"))
}

/// `Some(valid)` for a format the API server checks, `None` for an unknown one.
pub(crate) fn check(format: &str, s: &str) -> Option<bool> {
    let ok = match format {
        "date" => is_date(s),
        "date-time" | "datetime" => is_date_time(s),
        "duration" => is_duration(s),
        "uuid" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(
                &R,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            )
            .is_match(s)
        }
        "uuid3" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(
                &R,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            )
            .is_match(s)
        }
        "uuid4" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(
                &R,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
            )
            .is_match(s)
        }
        "uuid5" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(
                &R,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
            )
            .is_match(s)
        }
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.contains(':') && s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(s),
        "mac" => is_mac(s),
        "hostname" => is_hostname(s),
        "email" => is_email(s),
        "uri" => is_request_uri(s),
        "byte" => is_base64(s),
        "password" => true,
        "hexcolor" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(&R, r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$").is_match(s)
        }
        "rgbcolor" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(
                &R,
                r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$",
            )
            .is_match(s)
        }
        "bsonobjectid" => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "ssn" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(&R, r"^\d{3}[- ]?\d{2}[- ]?\d{4}$").is_match(s)
        }
        "isbn10" => is_isbn10(s),
        "isbn13" => is_isbn13(s),
        "isbn" => is_isbn10(s) || is_isbn13(s),
        "creditcard" => is_credit_card(s),
        _ => return None,
    };
    Some(ok)
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (
        s[0..4].parse::<i32>(),
        s[5..7].parse::<u32>(),
        s[8..10].parse::<u32>(),
    ) else {
        return false;
    };
    if !s[0..4]
        .bytes()
        .chain(s[5..7].bytes())
        .chain(s[8..10].bytes())
        .all(|c| c.is_ascii_digit())
    {
        return false;
    }
    if !(1..=12).contains(&m) || d == 0 {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    d <= days
}

/// strfmt's `IsDateTime`: a date, `t`, then `hh:mm:ss[.frac](z|±hh:mm)`, case-insensitive.
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    static R: OnceLock<Regex> = OnceLock::new();
    let rx = re(
        &R,
        r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$",
    );
    match rx.captures(parts[1]) {
        Some(c) => &c[1] <= "23" && &c[2] <= "59" && &c[3] <= "59",
        None => false,
    }
}

/// strfmt's `ParseDuration`: Go durations (`1h30m`), or number+unit groups with long unit names.
fn is_duration(s: &str) -> bool {
    static GO: OnceLock<Regex> = OnceLock::new();
    let go = re(&GO, r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$");
    if s == "0" || go.is_match(s) {
        return true;
    }
    static LONG: OnceLock<Regex> = OnceLock::new();
    let long = re(&LONG, r"^\s*((\d+)\s*([A-Za-zµ]+)\s*)+$");
    if !long.is_match(s) {
        return false;
    }
    static UNIT: OnceLock<Regex> = OnceLock::new();
    let unit = re(&UNIT, r"(\d+)\s*([A-Za-zµ]+)");
    unit.captures_iter(s).all(|c| {
        matches!(
            &c[2],
            "ns" | "us"
                | "µs"
                | "ms"
                | "s"
                | "sec"
                | "secs"
                | "second"
                | "seconds"
                | "m"
                | "min"
                | "mins"
                | "minute"
                | "minutes"
                | "h"
                | "hr"
                | "hrs"
                | "hour"
                | "hours"
                | "d"
                | "day"
                | "days"
                | "w"
                | "wk"
                | "wks"
                | "week"
                | "weeks"
        )
    })
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if let Ok(_v4) = ip.parse::<std::net::Ipv4Addr>() {
        bits <= 32
    } else if ip.parse::<std::net::Ipv6Addr>().is_ok() {
        bits <= 128
    } else {
        false
    }
}

fn is_mac(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    let rx = re(
        &R,
        r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{2}[:-]){7}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{2}[:-]){19}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$|^([0-9A-Fa-f]{4}\.){3}[0-9A-Fa-f]{4}$|^([0-9A-Fa-f]{4}\.){9}[0-9A-Fa-f]{4}$",
    );
    rx.is_match(s)
}

fn is_hostname(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    let rx = re(
        &R,
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z0-9\p{S}\p{L}])(-?[a-zA-Z0-9\p{S}\p{L}]){1,62})$",
    );
    rx.is_match(s) && s.len() <= 255 && s.split('.').all(|p| p.len() <= 63)
}

fn is_email(s: &str) -> bool {
    // net/mail.ParseAddress accepts "Name <local@domain>" and bare "local@domain".
    let addr = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s.trim(),
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !addr.chars().any(|c| c.is_whitespace())
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

/// govalidator's `IsRequestURI`: `url.ParseRequestURI` accepts an absolute URI or an absolute path.
fn is_request_uri(s: &str) -> bool {
    if s.starts_with('/') {
        return !s.chars().any(|c| c.is_whitespace() || c.is_control());
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_base64(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(
        &R,
        r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$",
    )
    .is_match(s)
}

fn digits_only(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, ' ' | '-')).collect()
}

fn is_isbn10(s: &str) -> bool {
    let d = digits_only(s);
    if d.len() != 10 {
        return false;
    }
    let mut sum = 0u32;
    for (i, c) in d.chars().enumerate() {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'X' if i == 9 => 10,
            _ => return false,
        };
        sum += (i as u32 + 1) * v;
    }
    sum.is_multiple_of(11)
}

fn is_isbn13(s: &str) -> bool {
    let d = digits_only(s);
    if d.len() != 13 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = d
        .bytes()
        .enumerate()
        .map(|(i, b)| (b - b'0') as u32 * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    sum.is_multiple_of(10)
}

fn is_credit_card(s: &str) -> bool {
    let d = digits_only(s);
    if d.len() < 12 || d.len() > 19 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut sum = 0u32;
    for (i, b) in d.bytes().rev().enumerate() {
        let mut v = (b - b'0') as u32;
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn date_time_follows_strfmt() {
        assert_eq!(check("date-time", "2024-05-01T10:00:00Z"), Some(true));
        assert_eq!(
            check("date-time", "2024-05-01T10:00:00.123+02:00"),
            Some(true)
        );
        assert_eq!(check("datetime", "2024-05-01t10:00:00z"), Some(true));
        assert_eq!(check("date-time", "2024-05-01 10:00:00"), Some(false));
        assert_eq!(check("date-time", "2024-02-30T10:00:00Z"), Some(false));
        assert_eq!(check("date-time", "yesterday"), Some(false));
        assert_eq!(check("date", "2024-02-29"), Some(true));
        assert_eq!(check("date", "2023-02-29"), Some(false));
    }

    #[test]
    fn other_formats() {
        assert_eq!(check("duration", "1h30m"), Some(true));
        assert_eq!(check("duration", "3 days"), Some(true));
        assert_eq!(check("duration", "soon"), Some(false));
        assert_eq!(
            check("uuid", "123e4567-e89b-12d3-a456-426614174000"),
            Some(true)
        );
        assert_eq!(check("uuid", "nope"), Some(false));
        assert_eq!(check("ipv4", "10.0.0.1"), Some(true));
        assert_eq!(check("ipv4", "10.0.0.256"), Some(false));
        assert_eq!(check("ipv6", "::1"), Some(true));
        assert_eq!(check("cidr", "10.0.0.0/8"), Some(true));
        assert_eq!(check("cidr", "10.0.0.0/33"), Some(false));
        assert_eq!(check("hostname", "example.com"), Some(true));
        assert_eq!(check("hostname", "-bad-.com"), Some(false));
        assert_eq!(check("email", "a@b.c"), Some(true));
        assert_eq!(check("email", "nope"), Some(false));
        assert_eq!(check("uri", "https://x/y"), Some(true));
        assert_eq!(check("uri", "not a uri"), Some(false));
        assert_eq!(check("byte", "aGVsbG8="), Some(true));
        assert_eq!(check("byte", "???"), Some(false));
        assert_eq!(check("mac", "01:23:45:67:89:ab"), Some(true));
        assert_eq!(check("isbn13", "978-3-16-148410-0"), Some(true));
        assert_eq!(check("creditcard", "4111 1111 1111 1111"), Some(true));
        assert_eq!(check("int32", "anything"), None);
        assert_eq!(check("made-up", "x"), None);
    }
}

//! Kubernetes resource quantities ("500m", "16Gi", "1e3", "2") parsed into integer
//! milli-units, rounded up as `resource.Quantity.MilliValue()` does. Pure; used by admission,
//! binding and the Downward API's `resourceFieldRef`.

use thiserror::Error;

/// A quantity that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid quantity {input:?}: {problem}")]
pub struct QuantityError {
    pub input: String,
    pub problem: &'static str,
}

/// Parses a quantity into milli-units (`"1"` → 1000, `"250m"` → 250, `"1Ki"` → 1_024_000),
/// rounding any finer fraction up.
pub fn parse_milli(input: &str) -> Result<i128, QuantityError> {
    let err = |problem| QuantityError {
        input: input.to_string(),
        problem,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s.len() > 64 {
        return Err(err("too long"));
    }
    let (negative, s) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    if number.is_empty() || number == "." {
        return Err(err("no digits"));
    }
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if frac_part.contains('.') {
        return Err(err("more than one decimal point"));
    }
    // numerator / 10^frac_len is the number as written.
    let mut numerator: i128 = 0;
    for d in int_part.bytes().chain(frac_part.bytes()) {
        numerator = numerator
            .checked_mul(10)
            .and_then(|n| n.checked_add(i128::from(d - b'0')))
            .ok_or_else(|| err("too large"))?;
    }
    let mut denominator: i128 = 10i128.pow(frac_part.len() as u32);
    // Scale: binary multiplier, or a power of ten exponent.
    let (binary, exp10): (i128, i32) = match suffix {
        "" => (1, 0),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        other => {
            let exp = other
                .strip_prefix(['e', 'E'])
                .ok_or_else(|| err("unknown suffix"))?;
            let exp: i32 = exp.parse().map_err(|_| err("bad exponent"))?;
            if !(-30..=30).contains(&exp) {
                return Err(err("exponent out of range"));
            }
            (1, exp)
        }
    };
    let exp10 = exp10 + 3; // milli-units
    numerator = numerator
        .checked_mul(binary)
        .ok_or_else(|| err("too large"))?;
    if exp10 >= 0 {
        numerator = numerator
            .checked_mul(10i128.pow(exp10 as u32))
            .ok_or_else(|| err("too large"))?;
    } else {
        denominator = denominator
            .checked_mul(10i128.pow((-exp10) as u32))
            .ok_or_else(|| err("too precise"))?;
    }
    let value = (numerator + denominator - 1) / denominator; // ceil for non-negative
    Ok(if negative { -value } else { value })
}

/// The whole-unit value of a milli quantity, rounded up (`Quantity.Value()`).
pub fn milli_to_units_ceil(milli: i128) -> i128 {
    if milli >= 0 {
        (milli + 999) / 1000
    } else {
        milli / 1000
    }
}

/// How a kubelet prints an amount of `resource` in admission messages: millicores for cpu,
/// whole units otherwise.
pub fn display_amount(resource: &str, milli: i128) -> i128 {
    if resource == super::consts::RESOURCE_CPU {
        milli
    } else {
        milli_to_units_ceil(milli)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_decimal_and_binary_forms() {
        assert_eq!(parse_milli("2"), Ok(2000));
        assert_eq!(parse_milli("250m"), Ok(250));
        assert_eq!(parse_milli("0.5"), Ok(500));
        assert_eq!(parse_milli("1.5Gi"), Ok(1_610_612_736_000));
        assert_eq!(parse_milli("16Gi"), Ok(17_179_869_184_000));
        assert_eq!(parse_milli("1k"), Ok(1_000_000));
        assert_eq!(parse_milli("128M"), Ok(128_000_000_000));
        assert_eq!(parse_milli("1e3"), Ok(1_000_000));
        assert_eq!(parse_milli("1E-3"), Ok(1));
        assert_eq!(parse_milli("+3"), Ok(3000));
        assert_eq!(parse_milli("-1"), Ok(-1000));
    }

    #[test]
    fn rounds_finer_fractions_up() {
        assert_eq!(parse_milli("1n"), Ok(1));
        assert_eq!(parse_milli("0.0001"), Ok(1));
        assert_eq!(parse_milli("1500u"), Ok(2));
    }

    #[test]
    fn refuses_garbage_with_a_reason() {
        for bad in [
            "",
            "abc",
            "1Qi",
            "1.2.3",
            ".",
            "1e99",
            "99999999999999999999999999999999999999Ei",
        ] {
            let e = parse_milli(bad).expect_err(bad);
            assert_eq!(e.input, bad);
        }
    }

    #[test]
    fn displays_cpu_in_millis_and_the_rest_in_units() {
        assert_eq!(display_amount("cpu", 1500), 1500);
        assert_eq!(display_amount("memory", 1_073_741_824_000), 1_073_741_824);
        assert_eq!(display_amount("pods", 1000), 1);
        assert_eq!(milli_to_units_ceil(1), 1);
    }
}

//! Kubernetes resource quantities (`"500m"`, `"16Gi"`, `"1e9"`) and AWS Batch resource values
//! (`VCPU "0.25"`, `MEMORY "2048"` MiB) converted into barge-core's integers.
//!
//! The operator meets quantities in node `allocatable`, pod requests and the simulated
//! kubelet's `sim.barge.dev/capacity` annotation; AWS Batch documents carry vCPUs as decimal
//! strings and memory in MiB. Conversions round up, as the Kubernetes scheduler does for
//! requests (a request of 0.1m CPU needs 1m). Exact integer arithmetic, no floats; values out
//! of range are refused, never wrapped.
//!
//! Grammar (Kubernetes `resource.Quantity`): an optional sign, digits with an optional
//! fraction, then either a suffix — binary `Ki Mi Gi Ti Pi Ei`, decimal `n u m k M G T P E` —
//! or a decimal exponent `e<int>` / `E<int>`.

use crate::error::{Error, Result};

const MAX_LEN: usize = 64;

/// A parsed quantity: `mantissa × 10^dec_exp × 2^bin_exp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Parsed {
    mantissa: i128,
    dec_exp: i32,
    bin_exp: i32,
}

fn invalid(text: &str, problem: &str) -> Error {
    Error::Quantity {
        quantity: text.to_string(),
        problem: problem.to_string(),
    }
}

fn parse(text: &str) -> Result<Parsed> {
    let s = text.trim();
    if s.is_empty() {
        return Err(invalid(text, "is empty"));
    }
    if s.len() > MAX_LEN {
        return Err(invalid(text, "is too long"));
    }
    let (negative, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(invalid(text, "has no digits"));
    }
    if frac_part.contains('.') {
        return Err(invalid(text, "has more than one decimal point"));
    }
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let mut mantissa: i128 = 0;
    for c in digits.bytes() {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(c - b'0')))
            .ok_or_else(|| invalid(text, "is too large"))?;
    }
    if negative {
        mantissa = -mantissa;
    }
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| invalid(text, "is too long"))?;
    let (mut dec_exp, mut bin_exp) = (-frac_len, 0);
    match suffix {
        "" => {}
        "Ki" => bin_exp = 10,
        "Mi" => bin_exp = 20,
        "Gi" => bin_exp = 30,
        "Ti" => bin_exp = 40,
        "Pi" => bin_exp = 50,
        "Ei" => bin_exp = 60,
        "n" => dec_exp -= 9,
        "u" => dec_exp -= 6,
        "m" => dec_exp -= 3,
        "k" => dec_exp += 3,
        "M" => dec_exp += 6,
        "G" => dec_exp += 9,
        "T" => dec_exp += 12,
        "P" => dec_exp += 15,
        "E" => dec_exp += 18,
        other if other.starts_with(['e', 'E']) => {
            let exp: i32 = other[1..]
                .parse()
                .map_err(|_| invalid(text, "has an invalid exponent"))?;
            if exp.abs() > 40 {
                return Err(invalid(text, "has an exponent out of range"));
            }
            dec_exp += exp;
        }
        _ => return Err(invalid(text, &format!("has an unknown suffix {suffix:?}"))),
    }
    Ok(Parsed {
        mantissa,
        dec_exp,
        bin_exp,
    })
}

/// `value × 10^dec_shift / divisor`, rounded up, as i64.
fn scaled_ceil(text: &str, p: Parsed, dec_shift: i32, divisor: i128) -> Result<i64> {
    if p.mantissa < 0 {
        return Err(invalid(text, "is negative"));
    }
    let too_large = || invalid(text, "is too large");
    let dec = p.dec_exp + dec_shift;
    let mut num = p.mantissa;
    let mut den = divisor;
    let pow10 = |e: i32| -> Option<i128> { 10i128.checked_pow(u32::try_from(e).ok()?) };
    let pow2 = |e: i32| -> Option<i128> { 2i128.checked_pow(u32::try_from(e).ok()?) };
    if dec >= 0 {
        num = num
            .checked_mul(pow10(dec).ok_or_else(too_large)?)
            .ok_or_else(too_large)?;
    } else {
        den = den
            .checked_mul(pow10(-dec).ok_or_else(too_large)?)
            .ok_or_else(too_large)?;
    }
    if p.bin_exp >= 0 {
        num = num
            .checked_mul(pow2(p.bin_exp).ok_or_else(too_large)?)
            .ok_or_else(too_large)?;
    } else {
        den = den
            .checked_mul(pow2(-p.bin_exp).ok_or_else(too_large)?)
            .ok_or_else(too_large)?;
    }
    let value = (num + den - 1) / den;
    i64::try_from(value).map_err(|_| too_large())
}

/// A CPU quantity in millicpu, rounded up: `"500m"` → 500, `"2"` → 2000, `"0.25"` → 250.
pub fn cpu_millis(quantity: &str) -> Result<i64> {
    scaled_ceil(quantity, parse(quantity)?, 3, 1)
}

/// A memory quantity in MiB, rounded up: `"16Gi"` → 16384, `"1G"` → 954, `"128974848"` → 123.
pub fn memory_mib(quantity: &str) -> Result<i64> {
    scaled_ceil(quantity, parse(quantity)?, 0, 1 << 20)
}

/// A count (GPUs, pods), rounded up: `"1"` → 1, `"110"` → 110.
pub fn count(quantity: &str) -> Result<i64> {
    scaled_ceil(quantity, parse(quantity)?, 0, 1)
}

/// AWS Batch `resourceRequirements` VCPU value (`"0.25"`, `"2"`) in millicpu.
pub fn aws_vcpus_millis(value: &str) -> Result<i64> {
    let p = parse(value)?;
    if p.bin_exp != 0 || value.trim().ends_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(invalid(value, "must be a plain number of vCPUs"));
    }
    scaled_ceil(value, p, 3, 1)
}

/// AWS Batch `resourceRequirements` MEMORY value (`"2048"`), already in MiB.
pub fn aws_memory_mib(value: &str) -> Result<i64> {
    let p = parse(value)?;
    if p.bin_exp != 0 || value.trim().ends_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(invalid(value, "must be a plain number of MiB"));
    }
    scaled_ceil(value, p, 0, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(cpu_millis("500m").expect("ok"), 500);
        assert_eq!(cpu_millis("2").expect("ok"), 2000);
        assert_eq!(cpu_millis("0.5").expect("ok"), 500);
        assert_eq!(cpu_millis("1.5").expect("ok"), 1500);
        assert_eq!(cpu_millis("100u").expect("ok"), 1, "rounded up");
        assert_eq!(cpu_millis("2e-1").expect("ok"), 200);
        assert!(
            cpu_millis("2e3m").is_err(),
            "an exponent and a suffix do not combine"
        );
        assert_eq!(cpu_millis("+4").expect("ok"), 4000);
        assert_eq!(cpu_millis(".5").expect("ok"), 500);
        assert_eq!(cpu_millis("0").expect("ok"), 0);
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(memory_mib("16Gi").expect("ok"), 16_384);
        assert_eq!(memory_mib("512Mi").expect("ok"), 512);
        assert_eq!(memory_mib("1G").expect("ok"), 954);
        assert_eq!(memory_mib("1e9").expect("ok"), 954);
        assert_eq!(memory_mib("128974848").expect("ok"), 123);
        assert_eq!(memory_mib("129M").expect("ok"), 124);
        assert_eq!(memory_mib("1.5Gi").expect("ok"), 1536);
        assert_eq!(memory_mib("1Ki").expect("ok"), 1);
        assert_eq!(memory_mib("1Ei").expect("ok"), 1 << 40);
        assert_eq!(count("110").expect("ok"), 110);
    }

    #[test]
    fn bad_quantities_are_refused_clearly() {
        for (bad, problem) in [
            ("", "is empty"),
            ("abc", "has no digits"),
            ("1.2.3", "more than one decimal point"),
            ("5Zi", "unknown suffix"),
            ("-1", "is negative"),
            ("1e999", "exponent out of range"),
            ("99999999999999999999999999999999999999999", "too large"),
            ("9Ei9", "invalid exponent"),
            ("9Gb", "unknown suffix"),
        ] {
            let e = memory_mib(bad).unwrap_err();
            assert!(e.to_string().contains(problem), "{bad}: {e}");
        }
        assert!(cpu_millis("1e30")
            .unwrap_err()
            .to_string()
            .contains("too large"));
    }

    #[test]
    fn aws_values() {
        assert_eq!(aws_vcpus_millis("0.25").expect("ok"), 250);
        assert_eq!(aws_vcpus_millis("4").expect("ok"), 4000);
        assert_eq!(aws_memory_mib("2048").expect("ok"), 2048);
        assert!(aws_memory_mib("2Gi").is_err());
        assert!(aws_vcpus_millis("500m").is_err());
    }
}

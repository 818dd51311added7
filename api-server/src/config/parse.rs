//! Parsers of one variable's value, shared by every concern: a value or its default through
//! a parser, durations, counts, booleans, sizes and URLs. Every failure names the variable.

use std::time::Duration;

use super::error::{ConfigError, err};

/// Reads `name` (or `default` when unset) through `parse`; its message becomes the problem.
pub(super) fn parse_with<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
    example: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let raw = get(name).unwrap_or_else(|| default.to_owned());
    parse(&raw).map_err(|problem| err(name, problem, example))
}

/// A non-zero duration such as `500ms`, `30s` or `5m`.
pub(super) fn parse_duration(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
    parse_with(get, name, default, "30s", |v| match humantime::parse_duration(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".into()),
        Err(_) => Err(format!("{v:?} is not a duration such as 500ms, 30s or 5m")),
    })
}

/// A whole number from `min` to 10000.
pub(super) fn parse_count(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: u32, min: u32) -> Result<u32, ConfigError> {
    // Both bounds fit a u32.
    parse_whole(get, name, &default.to_string(), "20", min as usize..=10_000).map(|n| n as u32)
}

/// A whole number within `range`.
pub(super) fn parse_whole(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
    example: &'static str,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    parse_with(get, name, default, example, |v| match v.parse::<usize>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("{v:?} is not a whole number from {} to {}", range.start(), range.end())),
    })
}

/// `true`/`false`, `1`/`0` or `yes`/`no`, in any case.
pub(super) fn parse_bool(name: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(err(name, format!("{v:?} is not true or false"), "false")),
    }
}

/// Parses `1048576`, `512KiB`, `1MiB`, `2MB` (decimal units) into bytes.
pub fn parse_size(v: &str) -> Result<usize, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: usize = digits.parse().map_err(|_| format!("{v:?} is not a size such as 1048576, 512KiB or 1MiB"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        other => return Err(format!("unknown unit {other:?}; use B, KiB, MiB, KB or MB")),
    };
    match n.checked_mul(mult) {
        Some(bytes) if (1..=1 << 30).contains(&bytes) => Ok(bytes),
        _ => Err(format!("{v:?} must be between 1 byte and 1GiB")),
    }
}

/// `url` if its scheme is one of `schemes`; the error never echoes the URL (it may hold a
/// password).
pub(super) fn check_url(name: &'static str, url: &str, schemes: &[&str], example: &'static str) -> Result<String, ConfigError> {
    match url.split_once("://") {
        Some((scheme, rest)) if schemes.contains(&scheme) && !rest.is_empty() => Ok(url.to_owned()),
        // Never echo the URL itself: it may hold a password.
        _ => Err(err(name, format!("is not a URL with scheme {}", schemes.join(", ")), example)),
    }
}

/// A lookup over `pairs` as `Config::from_lookup` sees the environment (trimmed, empty counts
/// as unset), for the concerns' own tests.
#[cfg(test)]
pub(super) fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.trim().to_owned())).collect();
    move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("99999999999999999999").is_err());
    }
}

//! Entity tags from row versions, and `If-Match` (RFC 9110 §13.1.1: strong comparison, so a
//! weak tag never matches).

/// The `ETag` of a version.
pub fn of(version: i64) -> String {
    format!("\"{version}\"")
}

/// The versions an `If-Match` header accepts: `None` when absent or `*` (any), otherwise the
/// listed strong tags (possibly none, which nothing matches: 412).
pub fn if_match(header: Option<&str>) -> Option<Vec<i64>> {
    let header = header?.trim();
    if header == "*" {
        return None;
    }
    Some(header.split(',').map(str::trim).filter_map(|tag| tag.strip_prefix('"')?.strip_suffix('"')?.parse::<i64>().ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strong_tags_only() {
        assert_eq!(if_match(None), None);
        assert_eq!(if_match(Some("*")), None);
        assert_eq!(if_match(Some("\"3\"")), Some(vec![3]));
        assert_eq!(if_match(Some("\"3\", \"4\"")), Some(vec![3, 4]));
        assert_eq!(if_match(Some("W/\"3\"")), Some(vec![]));
        assert_eq!(if_match(Some("garbage")), Some(vec![]));
        assert_eq!(of(7), "\"7\"");
    }
}

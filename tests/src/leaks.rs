//! Credentials that must never appear in a server's log: every server the suite starts is
//! checked when it stops ([`crate::binary::Server`]'s drop), so the whole suite's log output is
//! held to it, not only the redaction test's.

use std::sync::LazyLock;

use regex::Regex;

/// One pattern per kind of secret, with its name.
static SECRETS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        ("a JWT", r"\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\."),
        ("an API key", r"\bjeex_[A-Za-z0-9]{12}_[A-Za-z0-9_\-]{8,}"),
        ("a password in a URL", r"(?i)\b[a-z][a-z0-9+.\-]*://[^/\s:@]*:[^*/\s@][^/\s@]*@"),
        ("a bearer token", r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}"),
        ("a test password", r"hunter2"),
        ("a named secret", r#"(?i)(?:password|refresh_token|access_token|api_key)\\?["']?\s*[:=]\s*\\?["']?[^*"'\\\s&,;}\]]"#),
    ]
    .into_iter()
    .map(|(name, pattern)| (name, Regex::new(pattern).expect("leak patterns compile")))
    .collect()
});

/// The first line of `lines` that holds a secret, with what kind it is.
pub fn find(lines: &[String]) -> Option<(&'static str, String)> {
    lines.iter().find_map(|line| SECRETS.iter().find(|(_, re)| re.is_match(line)).map(|(name, _)| (*name, line.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_and_masks_are_not() {
        for leak in [
            "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig",
            "jeex_ABCDEFGHIJKL_abcdefghijklmnop",
            "redis://:pw@host:6379",
            "Authorization: Bearer abcdefghijkl",
            r#"{"password":"x"}"#,
        ] {
            assert!(find(&[leak.to_owned()]).is_some(), "{leak}");
        }
        for clean in ["redis://:***@host:6379", r#"{"password":"***"}"#, "jeex_*** used", "http://127.0.0.1:8080/docs", "token_type"] {
            assert_eq!(find(&[clean.to_owned()]), None, "{clean}");
        }
    }
}

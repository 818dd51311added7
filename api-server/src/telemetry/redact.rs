//! The one redaction point: every log line (through [`RedactingWriter`]) and every error text
//! a client may be shown ([`redact`] in the problem middleware, the health report and the
//! start-up errors) passes here, so a credential that a dependency's error message embeds —
//! a URL with a password, a JWKS URL with a token in its query, a bearer token, an API key —
//! never reaches a log or a response, whichever library wrote it.

use std::{borrow::Cow, io, sync::LazyLock};

use regex::{Regex, RegexSet};
use tracing_subscriber::fmt::MakeWriter;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Each pattern with its replacement (`$k` keeps the part that names the secret).
static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // scheme://user:password@host → scheme://user:***@host
        (r"(?i)(?P<k>\b[a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^/\s@]+@", "${k}***@"),
        // A JWT anywhere (access tokens, ID tokens).
        (r"\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*", "***"),
        // Our API keys: jeex_<prefix>_<secret> (the prefix alone is public; keep nothing).
        (r"\bjeex_[A-Za-z0-9]{12}_[A-Za-z0-9_\-]{8,}", "jeex_***"),
        // Authorization schemes with their credentials.
        (r"(?i)(?P<k>\b(?:bearer|basic)\s+)[A-Za-z0-9\-._~+/]{8,}=*", "${k}***"),
        // Named secrets in key=value, key: value, "key":"value", cookies and query strings.
        (
            r#"(?i)(?P<k>(?:password|passwd|pwd|secret|token|ticket|api[_\-]?key|apikey|jeex_access|jeex_refresh|authorization|cookie)\\?["']?\s*[:=]\s*\\?["']?)[^"'\\\s&,;})\]]+"#,
            "${k}***",
        ),
    ]
    .into_iter()
    .map(|(pattern, replacement)| (Regex::new(pattern).expect("redaction patterns compile"), replacement))
    .collect()
});

/// Any rule at all: most lines hold no secret and cost one scan.
static ANY: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(RULES.iter().map(|(r, _)| r.as_str())).expect("redaction patterns compile"));

/// `text` with every credential masked.
pub fn redact(text: &str) -> Cow<'_, str> {
    if !ANY.is_match(text) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    for (rule, replacement) in RULES.iter() {
        if let Cow::Owned(changed) = rule.replace_all(&out, *replacement) {
            out = changed;
        }
    }
    Cow::Owned(out)
}

/// A [`MakeWriter`] whose writers redact what they are given. The fmt layer formats an event
/// whole and writes it with one `write_all`, so a secret is never split across two calls.
pub struct RedactingWriter<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingWriter<M> {
    type Writer = Redacting<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Redacting(self.0.make_writer())
    }
}

/// One redacting writer.
pub struct Redacting<W>(W);

impl<W: io::Write> io::Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(redact(text).as_bytes())?,
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_and_the_rest_kept() {
        let cases = [
            ("connect postgres://jeex:hunter2@db:5432/jeex failed", "connect postgres://jeex:***@db:5432/jeex failed"),
            ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
            (
                "error sending request for url (https://auth.example.com/jwks.json?access_token=abc123)",
                "error sending request for url (https://auth.example.com/jwks.json?access_token=***)",
            ),
            ("Authorization: Bearer abcdefgh12345678", "Authorization: *** ***"),
            ("header bearer abcdefgh12345678 refused", "header bearer *** refused"),
            ("key jeex_ABCDEFGHIJKL_aaaaaaaaaaaaaaaaaaaaaaaa used", "key jeex_*** used"),
            (r#"{"refresh_token":"Zm9vYmFyYmF6cXV4","token_type":"Bearer"}"#, r#"{"refresh_token":"***","token_type":"Bearer"}"#),
            (r#"{"error":"password=hunter2 host=db"}"#, r#"{"error":"password=*** host=db"}"#),
            (r#"{"msg":"{\"password\":\"hunter2\"}"}"#, r#"{"msg":"{\"password\":\"***\"}"}"#),
            ("jwt eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl in a message", "jwt *** in a message"),
            ("cookie: jeex_refresh=Zm9vYmFyYmF6", "cookie: ***"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
        for plain in [
            "GET /api/v1/projects 200",
            "refresh token is unknown",
            "token verification failed",
            "http://localhost:8080/docs",
            "token_type",
        ] {
            assert!(matches!(redact(plain), Cow::Borrowed(_)), "{plain} is left alone");
        }
    }

    #[test]
    fn the_writer_redacts_each_event() {
        let mut out = Vec::new();
        io::Write::write_all(&mut Redacting(&mut out), b"url=redis://:pw@h:1/0\n").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "url=redis://:***@h:1/0\n");
    }
}

//! Input that no handler should ever see: one pass over every JSON body and query string
//! before routing, refusing what PostgreSQL cannot store or what would overflow a parser
//! further in.
//!
//! - the NUL character (`\u0000` or a raw 0 byte): PostgreSQL's `text` and `jsonb` refuse it;
//! - a lone UTF-16 surrogate escape (`"\ud800"`): not a character at all;
//! - nesting deeper than [`MAX_DEPTH`] anywhere, fields a handler ignores included (serde skips
//!   an ignored value without counting its depth, and `jsonb` would overflow its stack on it);
//! - a key twice in one object: parsers disagree on which one wins, so the request has no
//!   single meaning;
//! - a number beyond the 64-bit float range (`1e400`), even in a field a handler ignores;
//! - in a query string, a NUL or bytes that are not UTF-8 in any name or value.
//!
//! Each refusal is a 400 naming the JSON pointer (or parameter) where the problem is. A body
//! that is not JSON at all is left to the payload parser, which says so.

use std::collections::HashSet;

use crate::error::{ApiError, FieldError};

/// Deepest nesting of arrays and objects accepted in any body. Well above any body the API
/// takes (an import's metadata sits 5 levels in, with `JEEX_METADATA_MAX_DEPTH` of its own).
pub const MAX_DEPTH: usize = 64;

/// Does `content_type` announce JSON (`application/json`, `application/problem+json`, …)?
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Checks a query string (still percent-encoded).
pub fn check_query(query: &str) -> Result<(), ApiError> {
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name_bytes, value_bytes) = (decode(name), decode(value));
        let shown = || String::from_utf8_lossy(&name_bytes).replace('\0', "\\u0000");
        if name_bytes.contains(&0) || value_bytes.contains(&0) {
            return Err(refuse(&shown(), "must not contain the NUL character (U+0000)", "a query parameter is not valid"));
        }
        // Not silently replaced with U+FFFD: the server would answer for input nobody sent.
        if std::str::from_utf8(&name_bytes).is_err() || std::str::from_utf8(&value_bytes).is_err() {
            return Err(refuse(&shown(), "must be percent-encoded UTF-8", "a query parameter is not valid"));
        }
    }
    Ok(())
}

/// Percent-decodes (`+` is a space in a query) to bytes.
fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Bodies above this are scanned off the async workers (an import may be tens of MiB).
const INLINE_SCAN: usize = 256 << 10;

/// Checks a buffered JSON body; a large one on a blocking thread.
pub async fn check_body(bytes: bytes::Bytes) -> Result<(), ApiError> {
    if bytes.len() <= INLINE_SCAN {
        return check_json(&bytes);
    }
    tokio::task::spawn_blocking(move || check_json(&bytes)).await.map_err(|e| ApiError::Internal(format!("input scan: {e}")))?
}

/// Checks a JSON body. Malformed JSON passes (the payload parser reports it with position).
pub fn check_json(body: &[u8]) -> Result<(), ApiError> {
    match (Scanner { b: body, i: 0, path: Vec::new() }).value() {
        Err(Found::Problem(pointer, message)) => Err(refuse(&pointer, message, "the request body is not valid")),
        Ok(()) | Err(Found::Malformed) => Ok(()),
    }
}

fn refuse(field: &str, message: &str, detail: &str) -> ApiError {
    ApiError::Validation { detail: detail.into(), errors: vec![FieldError { field: field.into(), message: message.into() }] }
}

/// Why the scan stopped.
enum Found {
    /// A refusal at a JSON pointer.
    Problem(String, &'static str),
    /// Not JSON: left to the parser.
    Malformed,
}

/// One step of the path to the current value.
enum Step {
    Key(String),
    Index(usize),
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    path: Vec<Step>,
}

impl Scanner<'_> {
    fn pointer(&self) -> String {
        let mut p = String::new();
        for step in &self.path {
            p.push('/');
            match step {
                Step::Key(k) => p.push_str(&k.replace('~', "~0").replace('/', "~1")),
                Step::Index(i) => p.push_str(&i.to_string()),
            }
        }
        if p.is_empty() { "body".into() } else { p }
    }

    fn problem(&self, message: &'static str) -> Found {
        Found::Problem(self.pointer(), message)
    }

    fn skip_ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// The document: one value, iteratively (an explicit stack, so no input can overflow ours).
    fn value(&mut self) -> Result<(), Found> {
        // Per open container: for objects the keys seen so far.
        let mut open: Vec<Option<HashSet<String>>> = Vec::new();
        loop {
            // A value starts here.
            self.skip_ws();
            match self.peek().ok_or(Found::Malformed)? {
                b'{' | b'[' => {
                    let is_object = self.b[self.i] == b'{';
                    self.i += 1;
                    if open.len() >= MAX_DEPTH {
                        return Err(self.problem("nests arrays and objects deeper than 64 levels"));
                    }
                    self.skip_ws();
                    let empty_end = if is_object { b'}' } else { b']' };
                    if self.peek() == Some(empty_end) {
                        self.i += 1;
                    } else {
                        if is_object {
                            let mut keys = HashSet::new();
                            let key = self.key()?;
                            keys.insert(key.clone());
                            self.path.push(Step::Key(key));
                            open.push(Some(keys));
                        } else {
                            self.path.push(Step::Index(0));
                            open.push(None);
                        }
                        continue;
                    }
                }
                b'"' => self.string().map(drop)?,
                _ => self.scalar()?,
            }
            // A value ended: close containers, or move to the next member.
            loop {
                let Some(top) = open.last_mut() else {
                    return Ok(());
                };
                self.skip_ws();
                let close = if top.is_some() { b'}' } else { b']' };
                match self.peek().ok_or(Found::Malformed)? {
                    b',' => {
                        self.i += 1;
                        match (top, self.path.last_mut()) {
                            (Some(keys), Some(_)) => {
                                self.skip_ws();
                                let key = self.key_text()?;
                                self.path.pop();
                                self.path.push(Step::Key(key.clone()));
                                if !keys.insert(key) {
                                    return Err(self.problem("is a duplicate key: each key may appear once in an object"));
                                }
                                self.colon()?;
                            }
                            (None, Some(Step::Index(i))) => *i += 1,
                            _ => return Err(Found::Malformed),
                        }
                        break;
                    }
                    c if c == close => {
                        self.i += 1;
                        open.pop();
                        self.path.pop();
                    }
                    _ => return Err(Found::Malformed),
                }
            }
        }
    }

    /// An object's first key and its colon.
    fn key(&mut self) -> Result<String, Found> {
        let key = self.key_text()?;
        self.colon()?;
        Ok(key)
    }

    fn key_text(&mut self) -> Result<String, Found> {
        if self.peek() != Some(b'"') {
            return Err(Found::Malformed);
        }
        self.string()
    }

    fn colon(&mut self) -> Result<(), Found> {
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(Found::Malformed);
        }
        self.i += 1;
        Ok(())
    }

    /// A number or literal, read to the next delimiter (the parser checks its form). A number
    /// beyond the 64-bit float range is refused here even where a handler would ignore it: it
    /// would reach storage as text no client can read back.
    fn scalar(&mut self) -> Result<(), Found> {
        let start = self.i;
        while self.i < self.b.len() && !matches!(self.b[self.i], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r') {
            if self.b[self.i] == 0 {
                return Err(self.problem("must not contain the NUL character (U+0000)"));
            }
            self.i += 1;
        }
        let token = &self.b[start..self.i];
        if token.is_empty() {
            return Err(Found::Malformed);
        }
        if matches!(token[0], b'-' | b'0'..=b'9')
            && let Ok(number) = std::str::from_utf8(token).map(str::parse::<f64>)
            && number.is_ok_and(f64::is_infinite)
        {
            return Err(self.problem("is a number beyond the 64-bit floating-point range"));
        }
        Ok(())
    }

    /// A string at `"`, decoded (keys are compared decoded: `"a"` and `"\u0061"` are one key).
    fn string(&mut self) -> Result<String, Found> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.b.get(self.i).ok_or(Found::Malformed)?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|_| Found::Malformed),
                0 => return Err(self.problem("must not contain the NUL character (U+0000)")),
                b'\\' => {
                    let e = *self.b.get(self.i).ok_or(Found::Malformed)?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let unit = self.hex4()?;
                            match unit {
                                0 => return Err(self.problem("must not contain the NUL character (U+0000)")),
                                0xD800..=0xDBFF => {
                                    let low = if self.b.get(self.i..self.i + 2) == Some(b"\\u") {
                                        self.i += 2;
                                        self.hex4()?
                                    } else {
                                        0
                                    };
                                    if !(0xDC00..=0xDFFF).contains(&low) {
                                        return Err(self.problem("contains a lone UTF-16 surrogate, which is not a character"));
                                    }
                                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)).ok_or(Found::Malformed)?
                                }
                                0xDC00..=0xDFFF => {
                                    return Err(self.problem("contains a lone UTF-16 surrogate, which is not a character"));
                                }
                                u => char::from_u32(u).ok_or(Found::Malformed)?,
                            }
                        }
                        _ => return Err(Found::Malformed),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Found> {
        let digits = self.b.get(self.i..self.i + 4).ok_or(Found::Malformed)?;
        let text = std::str::from_utf8(digits).map_err(|_| Found::Malformed)?;
        let unit = u32::from_str_radix(text, 16).map_err(|_| Found::Malformed)?;
        self.i += 4;
        Ok(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(body: &str) -> Option<(String, String)> {
        match check_json(body.as_bytes()) {
            Ok(()) => None,
            Err(ApiError::Validation { errors, .. }) => Some((errors[0].field.clone(), errors[0].message.clone())),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn good_json_passes_and_malformed_json_is_left_to_the_parser() {
        for ok in [
            r#"{"a": [1, 2, {"b": "c\u00e9\ud83d\ude00"}], "d": null, "e": true, "f": -1.5e3}"#,
            "[]",
            "{}",
            r#""\u0001""#,
            "{\"a\": {}}",
            "[1,",
            "{\"a\" 1}",
            "nonsense",
            "",
        ] {
            assert_eq!(field(ok), None, "{ok}");
        }
    }

    #[test]
    fn each_refusal_names_its_pointer() {
        assert_eq!(field(r#"{"title": "a\u0000b"}"#).unwrap().0, "/title");
        assert_eq!(field("{\"meta\": {\"k\u{0}\": 1}}").unwrap().0, "/meta");
        assert_eq!(field(r#"{"meta": {"x": ["ok", "\ud800"]}}"#).unwrap().0, "/meta/x/1");
        assert_eq!(field(r#"{"a": "\udc00"}"#).unwrap().1, "contains a lone UTF-16 surrogate, which is not a character");
        assert_eq!(field(r#"{"a": "\ud800\u0041"}"#).unwrap().0, "/a");
        assert_eq!(field(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap().0, "/a");
        assert_eq!(field(r#"{"a": 1, "\u0061": 3}"#).unwrap().0, "/a");
        assert_eq!(field(r#"{"a/b~": {"x": 1, "x": 2}}"#).unwrap().0, "/a~1b~0/x");
        assert_eq!(field(r#"[{"a": 1}, {"a": 1}]"#), None, "the same key in two objects is fine");
        assert_eq!(field(r#"{"a": [1e308, -1.5e-320, 123456789012345678901234567890]}"#), None);
        assert_eq!(field(r#"{"a": [1, 1e400]}"#).unwrap().0, "/a/1");
        assert_eq!(field(r#"{"a": -1e400}"#).unwrap().0, "/a");
    }

    #[test]
    fn depth_counts_everywhere_without_recursion() {
        let at_limit = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(field(&at_limit), None);
        let ignored = format!(r#"{{"documents": [], "id": {}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        let (pointer, message) = field(&ignored).unwrap();
        assert!(pointer.starts_with("/id/0/0/0"), "{pointer}");
        assert!(message.contains("deeper than 64"), "{message}");
    }

    #[test]
    fn queries_refuse_nul_in_names_and_values() {
        assert!(check_query("q=a%00b").is_err());
        assert!(check_query("a%00=1").is_err());
        assert!(check_query("limit=10&q=%E2%82%AC+x&cursor=%zz").is_ok());
        assert!(check_query("q=%0").is_ok());
        assert!(check_query("q=%ED%A0%80").is_err(), "an encoded surrogate is not UTF-8");
        assert!(check_query("q=%FF").is_err());
    }
}

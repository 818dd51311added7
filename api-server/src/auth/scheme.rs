//! The `Authorization` header, read one way for everyone: the limiter (which keys a request
//! by its user) and authentication (which admits it). Two readings would let a client be
//! admitted by one and unseen by the other — `bearer` counted only per IP, for instance.
//!
//! RFC 9110 §11.1: the scheme is case-insensitive and separated from its credentials by
//! one or more spaces.

use poem::http::{HeaderMap, header};

/// What an `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Authorization<'a> {
    /// No header.
    Absent,
    /// `Bearer <token>`, in any case, the token trimmed.
    Bearer(&'a str),
    /// Anything else: another scheme, no token, not text.
    Other,
}

/// Reads the `Authorization` header of `headers`.
pub fn authorization(headers: &HeaderMap) -> Authorization<'_> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Authorization::Absent };
    let Ok(text) = value.to_str() else { return Authorization::Other };
    let text = text.trim();
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Authorization::Bearer(token.trim()),
        _ => Authorization::Other,
    }
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    fn read(value: &str) -> Authorization<'static> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        match authorization(&headers) {
            Authorization::Bearer(t) => Authorization::Bearer(Box::leak(t.to_owned().into_boxed_str())),
            Authorization::Absent => Authorization::Absent,
            Authorization::Other => Authorization::Other,
        }
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_trimmed() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR   abc  "] {
            assert_eq!(read(value), Authorization::Bearer("abc"), "{value}");
        }
        for value in ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", "abc"] {
            assert_eq!(read(value), Authorization::Other, "{value}");
        }
        assert_eq!(authorization(&HeaderMap::new()), Authorization::Absent);
    }
}

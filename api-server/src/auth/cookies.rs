//! The auth cookies: httpOnly, `SameSite=Lax`, `Secure` outside development. The refresh
//! cookie is sent only to the auth endpoints.

use poem::http::{HeaderMap, HeaderValue, header};

/// Access-token cookie.
pub const ACCESS: &str = "jeex_access";
/// Refresh-token cookie.
pub const REFRESH: &str = "jeex_refresh";
/// Path the refresh cookie is limited to.
pub const REFRESH_PATH: &str = "/api/v1/auth";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value. `max_age` 0 deletes the cookie.
pub fn set(name: &str, value: &str, path: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    // Values are base64url or JWTs: nothing needs quoting.
    let text = format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("jeex_invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_cookie_among_many() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; jeex_access=tok.en.x; b=2"));
        assert_eq!(get(&h, ACCESS).as_deref(), Some("tok.en.x"));
        assert_eq!(get(&h, REFRESH), None);
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_when_asked() {
        let c = set(ACCESS, "v", "/", 60, true);
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"), "{c}");
        assert!(!set(ACCESS, "v", "/", 60, false).to_str().unwrap().contains("Secure"));
    }
}

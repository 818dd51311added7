//! Security headers on every response, error and docs pages included. The docs UI gets the
//! narrowest Content-Security-Policy that lets Swagger UI run: its inline script and style
//! blocks are allowed by their SHA-256 hashes, computed from the page the server serves.

use base64::Engine;
use poem::{
    Response,
    http::{HeaderName, HeaderValue, header},
};
use sha2::{Digest, Sha256};

/// Where Swagger UI is mounted.
pub const DOCS_PATH: &str = "/docs";

/// Policy for everything that is not the docs UI.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The two policies in force.
#[derive(Debug, Clone)]
pub struct Policies {
    docs_csp: HeaderValue,
}

impl Policies {
    /// Derives the docs policy from the exact HTML served at [`DOCS_PATH`].
    pub fn for_docs_page(html: &str) -> Self {
        let scripts = inline_hashes(html, "script");
        let styles = inline_hashes(html, "style");
        let csp = format!(
            "default-src 'none'; script-src {scripts}; style-src {styles}; img-src 'self' data:; connect-src 'self'; font-src 'self' data:; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        );
        Self { docs_csp: HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(API_CSP)) }
    }
}

/// `'sha256-…'` sources for the contents of every inline `<tag …>…</tag>` block.
fn inline_hashes(html: &str, tag: &str) -> String {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut sources = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start..];
        let Some(body_start) = after.find('>').map(|i| i + 1) else { break };
        let Some(body_len) = after[body_start..].find(&close) else { break };
        let body = &after[body_start..body_start + body_len];
        let digest = Sha256::digest(body.as_bytes());
        sources.push(format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest)));
        rest = &after[body_start + body_len..];
    }
    if sources.is_empty() { "'none'".into() } else { sources.join(" ") }
}

/// Whether `path` belongs to the docs UI.
pub fn is_docs(path: &str) -> bool {
    path == DOCS_PATH || path.starts_with("/docs/")
}

/// Headers every response carries, whatever its path.
const COMMON: [(HeaderName, HeaderValue); 7] = [
    (header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains")),
    (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    (
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static(
            "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()",
        ),
    ),
    (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
    (HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("same-origin")),
];

/// Headers no response keeps: they name the software, which helps nobody but an attacker.
/// Constants, so their names are not parsed on every request.
const REMOVED: [HeaderName; 2] = [header::SERVER, HeaderName::from_static("x-powered-by")];

/// Sets every security header on `resp`, the docs policy when `path` is the docs UI's.
pub fn apply(policies: &Policies, path: &str, resp: &mut Response) {
    let h = resp.headers_mut();
    // One allocation instead of several growths while inserting.
    h.reserve(COMMON.len() + 2);
    for (name, value) in COMMON {
        h.insert(name, value);
    }
    if is_docs(path) {
        h.insert(header::CONTENT_SECURITY_POLICY, policies.docs_csp.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    } else {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(API_CSP));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    for name in REMOVED {
        h.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_each_inline_block() {
        let html = "<style a=1>p{}</style><script>x()</script><script charset=\"UTF-8\">y()</script>";
        assert_eq!(inline_hashes(html, "style").matches("'sha256-").count(), 1);
        assert_eq!(inline_hashes(html, "script").matches("'sha256-").count(), 2);
        // sha256("x()") in base64, computed independently.
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"x()"));
        assert!(inline_hashes(html, "script").contains(&expected));
        assert_eq!(inline_hashes("<p>", "script"), "'none'");
    }

    #[test]
    fn replaces_ours_keeps_theirs_and_drops_the_banner() {
        let policies = Policies::for_docs_page("<script>x()</script>");
        let mut resp = Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "max-age=60")
            .header(header::SERVER, "poem")
            .header("x-powered-by", "rust")
            .header(header::VARY, "origin")
            .header(header::VARY, "accept-encoding")
            .finish();
        apply(&policies, "/api/v1/projects", &mut resp);
        let h = resp.headers();
        assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "application/json");
        assert_eq!(h.get_all(header::CACHE_CONTROL).iter().collect::<Vec<_>>(), ["no-store"]);
        assert_eq!(h.get_all(header::VARY).iter().collect::<Vec<_>>(), ["origin", "accept-encoding"]);
        assert!(!h.contains_key(header::SERVER) && !h.contains_key("x-powered-by"));
        assert_eq!(h.get(header::CONTENT_SECURITY_POLICY).unwrap(), API_CSP);
        for (name, value) in COMMON {
            assert_eq!(h.get(&name), Some(&value), "{name}");
        }

        let mut docs = Response::builder().header(header::CONTENT_TYPE, "text/html").finish();
        apply(&policies, "/docs", &mut docs);
        let csp = docs.headers().get(header::CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
        assert!(csp.contains("script-src 'sha256-"), "{csp}");
        assert_eq!(docs.headers().get(header::CACHE_CONTROL).unwrap(), "no-cache");
        assert_eq!(docs.headers().get(header::CONTENT_TYPE).unwrap(), "text/html");
    }
}

//! Security headers on every response, error and docs pages included. The docs UI gets the
//! narrowest Content-Security-Policy that lets Swagger UI run: its inline script and style
//! blocks are allowed by their SHA-256 hashes, computed from the page the server serves.

use std::sync::Arc;

use base64::Engine;
use poem::{
    Endpoint, IntoResponse, Request, Response, Result,
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

fn is_docs(path: &str) -> bool {
    path == DOCS_PATH || path.starts_with("/docs/")
}

/// The middleware function.
pub async fn handle<E: Endpoint>(policies: Arc<Policies>, ep: Arc<E>, req: Request) -> Result<Response> {
    let docs = is_docs(req.uri().path());
    let mut resp = ep.call(req).await?.into_response();
    let h = resp.headers_mut();
    let set = |h: &mut poem::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        HeaderName::from_static("permissions-policy"),
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()",
    );
    set(h, HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(h, HeaderName::from_static("cross-origin-resource-policy"), "same-origin");
    if docs {
        h.insert(header::CONTENT_SECURITY_POLICY, policies.docs_csp.clone());
        set(h, header::CACHE_CONTROL, "no-cache");
    } else {
        set(h, header::CONTENT_SECURITY_POLICY, API_CSP);
        set(h, header::CACHE_CONTROL, "no-store");
    }
    h.remove(header::SERVER);
    h.remove(HeaderName::from_static("x-powered-by"));
    Ok(resp)
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
}

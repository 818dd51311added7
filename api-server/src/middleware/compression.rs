//! Response compression: brotli or gzip, as the client prefers, for bodies over 1 KiB.
//! Event streams are never compressed (buffering would delay every event).

use poem::{
    Body, IntoResponse, Request, Response, Result,
    http::{HeaderValue, header},
    web::{Compress, CompressionAlgo, CompressionLevel},
};

/// Bodies smaller than this are sent as they are.
pub const MIN_SIZE: usize = 1024;

/// The encoding to use, from `Accept-Encoding` (brotli preferred; `q=0` excludes).
fn negotiate(accept: &str) -> Option<CompressionAlgo> {
    let offered = |name: &str| {
        accept.split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            parts.next().is_some_and(|coding| coding.eq_ignore_ascii_case(name))
                && !parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0)))
        })
    };
    if offered("br") {
        Some(CompressionAlgo::BR)
    } else if offered("gzip") {
        Some(CompressionAlgo::GZIP)
    } else {
        None
    }
}

/// The encoding the client accepts, if any.
pub fn requested(req: &Request) -> Option<CompressionAlgo> {
    req.headers().get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).and_then(negotiate)
}

/// Compresses `resp` with `algo` when it is worth it and is not an event stream.
pub async fn compress(mut resp: Response, algo: CompressionAlgo) -> Result<Response> {
    let content_type = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.starts_with("text/event-stream") || resp.headers().contains_key(header::CONTENT_ENCODING) {
        return Ok(resp);
    }
    // Bodies here are bounded API responses (streams are excluded above), so buffering one to
    // learn its size is cheap.
    let bytes = resp.take_body().into_bytes().await?;
    resp.headers_mut().append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if bytes.len() < MIN_SIZE {
        resp.set_body(Body::from_bytes(bytes));
        return Ok(resp);
    }
    // Moderate levels: brotli's default (11) costs ~100x more CPU for a few percent.
    let level = CompressionLevel::Precise(if algo == CompressionAlgo::BR { 4 } else { 6 });
    resp.set_body(Body::from_bytes(bytes));
    Ok(Compress::new(resp, algo).with_quality(level).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_preferred_encoding() {
        assert_eq!(negotiate("gzip, deflate, br"), Some(CompressionAlgo::BR));
        assert_eq!(negotiate("gzip"), Some(CompressionAlgo::GZIP));
        assert_eq!(negotiate("br;q=0, gzip;q=0.5"), Some(CompressionAlgo::GZIP));
        assert_eq!(negotiate("identity"), None);
    }
}

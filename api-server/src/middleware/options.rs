//! Answers a plain (non-CORS) `OPTIONS` request for a known route with 204 and `Allow`, as the
//! `Allow` header of a 405 promises. CORS preflights are answered by [`super::cors`] first.

use poem::{
    IntoResponse, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};

use crate::routes::RouteTable;

/// The answer to `req` when it is an `OPTIONS` request for a known route.
pub fn answer(routes: &RouteTable, req: &Request) -> Option<Response> {
    if req.method() != Method::OPTIONS {
        return None;
    }
    let allow = HeaderValue::from_str(&routes.find(req.uri().path())?.allow_header()).ok()?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::ALLOW, allow);
    Some(resp)
}

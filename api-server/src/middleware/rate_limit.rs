//! The rate-limit step: classifies the request (health, metrics and docs are never limited),
//! names who is asking, asks the limiter, and answers 429 problem JSON — or adds the
//! `RateLimit-Policy` / `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers).
//!
//! Every request counts against its client IP. Only a verified access token adds its user,
//! and with it the project in the path (at [`PROJECT_MULTIPLE`] times the quota, since a
//! project's members share it): nobody can spend someone else's budget by naming their key
//! or project without credentials. API-key requests count against their IP only (checking a
//! key costs a database round trip, which the limiter must not add).

use std::net::IpAddr;

use poem::{
    Request, Response,
    http::{HeaderValue, Method, header},
};

use super::correlation::CorrelationId;
use crate::{
    auth::{cookies, principal::API_KEY_HEADER},
    config::{Quota, TrustedNet},
    error::{ErrorCode, Problem},
    ratelimit::{Class, Verdict, gcra::Outcome},
    routes::RouteEntry,
    state::AppState,
};

/// How many times the class quota a project gets (its members share it).
pub const PROJECT_MULTIPLE: u32 = 10;

/// The problem type of a refused request (registered with the rate-limit headers draft).
pub const QUOTA_EXCEEDED: &str = "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// The class of a request to `route`, or `None` when it is never limited.
pub fn classify(route: Option<&RouteEntry>, req: &Request) -> Option<Class> {
    let template = &route?.template;
    if !template.starts_with("/api/") {
        return None;
    }
    Some(if template.starts_with("/api/v1/auth/") {
        Class::Auth
    } else if matches!(*req.method(), Method::GET | Method::HEAD) {
        Class::Reads
    } else {
        Class::Writes
    })
}

/// The client's address: the peer, unless the peer is a trusted proxy — then the nearest
/// untrusted address in `X-Forwarded-For`.
pub fn client_ip(req: &Request, trusted: &[TrustedNet]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let hops: Vec<&str> =
        req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim).collect();
    // From the nearest hop outwards: the first untrusted address is the client. An entry that
    // does not parse ends the walk — anything left of it was written by the client.
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else { return Some(peer) };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// The bucket of an address: IPv6 clients are keyed by their /64, which one subscriber holds.
fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Who the request counts against, each with its multiple of the quota.
async fn identities(state: &AppState, req: &Request, path: &str) -> Vec<(String, u32)> {
    let mut ids = Vec::with_capacity(3);
    if let Some(ip) = client_ip(req, &state.limiter().config().trusted_proxies) {
        ids.push((ip_key(ip), 1));
    }
    if !req.headers().contains_key(API_KEY_HEADER) {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_owned)
            .or_else(|| cookies::get(req.headers(), cookies::ACCESS));
        // Verified tokens are cached, so this costs a hash lookup; an invalid token simply
        // adds no user key (authentication refuses it later).
        if let Some(token) = bearer
            && let Ok(user) = state.access_tokens().verify(token.trim()).await
        {
            ids.push((format!("user:{user}"), 1));
            if let Some(id) = crate::routes::project_of(path) {
                ids.push((format!("project:{id}"), PROJECT_MULTIPLE));
            }
        }
    }
    ids
}

/// Asks the limiter about `req` under `class` (from [`class_to_check`]).
pub async fn decide(state: &AppState, class: Class, req: &Request, path: &str) -> Verdict {
    let ids = identities(state, req, path).await;
    state.limiter().check(class, &ids).await
}

/// The class to check `req` against, or `None` when its route is never limited or its
/// class has no quota. Synchronous, so unlimited requests never build [`decide`]'s future.
pub fn class_to_check(state: &AppState, route: Option<&RouteEntry>, req: &Request) -> Option<Class> {
    classify(route, req).filter(|class| state.limiter().quota(*class).is_some())
}

fn policy_header(class: Class, quota: Quota) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\";q={};w={}", class.name(), quota.limit, quota.window.as_secs()))
        .unwrap_or(HeaderValue::from_static(""))
}

fn limit_header(class: Class, outcome: Outcome) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\";r={};t={}", class.name(), outcome.remaining, outcome.reset_secs))
        .unwrap_or(HeaderValue::from_static(""))
}

/// Adds the rate-limit fields to a served response.
pub fn annotate(resp: &mut Response, class: Class, quota: Quota, outcome: Outcome) {
    resp.headers_mut().insert("ratelimit-policy", policy_header(class, quota));
    resp.headers_mut().insert("ratelimit", limit_header(class, outcome));
}

/// The 429 answer: problem JSON naming the violated policy, `Retry-After` equal to `t`.
pub fn refused(class: Class, quota: Quota, outcome: Outcome, path: &str, id: &CorrelationId) -> Response {
    let mut problem = Problem::new(
        ErrorCode::RateLimited,
        format!(
            "the {} quota of {} requests per {} s is used up; retry after {} s",
            class.name(),
            quota.limit,
            quota.window.as_secs(),
            outcome.reset_secs
        ),
    )
    .for_request(path, &id.0);
    problem.type_ = QUOTA_EXCEEDED.into();
    problem.violated_policies = Some(vec![class.name().into()]);
    let mut resp = problem.into_response();
    annotate(&mut resp, class, quota, outcome);
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(outcome.reset_secs));
    resp
}

/// The answer when the limiter cannot be asked (Redis down): 503, retry shortly.
pub fn unavailable(path: &str, id: &CorrelationId) -> Response {
    let problem = Problem::new(ErrorCode::Unavailable, "the rate limiter is unavailable; retry shortly").for_request(path, &id.0);
    let mut resp = problem.into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

//! The rate-limit step: classifies the request (health, metrics and docs are never limited),
//! names who is asking (client IP, user or API key, project), asks the limiter, and answers
//! 429 problem JSON — or adds the `RateLimit-Policy` / `RateLimit` fields
//! (draft-ietf-httpapi-ratelimit-headers) to the response.

use std::net::IpAddr;

use poem::{
    Request, Response,
    http::{HeaderValue, Method, header},
};

use super::correlation::CorrelationId;
use crate::{
    auth::{api_keys, cookies, principal::API_KEY_HEADER},
    config::{Quota, TrustedNet},
    error::{ErrorCode, Problem},
    ratelimit::{Class, Verdict, gcra::Outcome},
    routes::RouteTable,
    state::AppState,
};

/// The problem type of a refused request (registered with the rate-limit headers draft).
pub const QUOTA_EXCEEDED: &str = "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// The class of a request, or `None` when it is never limited.
pub fn classify(routes: &RouteTable, req: &Request, path: &str) -> Option<Class> {
    let template = &routes.find(path)?.template;
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
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(forwarded.iter().rev().copied().find(|ip| !is_trusted(*ip)).or_else(|| forwarded.first().copied()).unwrap_or(peer))
}

/// Who the request counts against.
async fn identities(state: &AppState, req: &Request, path: &str) -> Vec<String> {
    let mut ids = Vec::with_capacity(3);
    if let Some(ip) = client_ip(req, &state.limiter().config().trusted_proxies) {
        ids.push(format!("ip:{ip}"));
    }
    if let Some(key) = req.headers().get(API_KEY_HEADER).and_then(|v| v.to_str().ok()).and_then(|k| api_keys::parse(k.trim())) {
        ids.push(format!("key:{}", key.0));
    } else {
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
            ids.push(format!("user:{user}"));
        }
    }
    if let Some(project) = path.strip_prefix("/api/v1/projects/").and_then(|rest| rest.split('/').next())
        && let Ok(id) = uuid::Uuid::parse_str(project)
    {
        ids.push(format!("project:{id}"));
    }
    ids
}

/// Asks the limiter about `req`.
pub async fn decide(state: &AppState, routes: &RouteTable, req: &Request, path: &str) -> Verdict {
    let Some(class) = classify(routes, req, path) else { return Verdict::Unlimited };
    if state.limiter().quota(class).is_none() {
        return Verdict::Unlimited;
    }
    let ids = identities(state, req, path).await;
    state.limiter().check(class, &ids).await
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

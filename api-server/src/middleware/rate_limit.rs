//! The rate-limit step: classifies the request (health, metrics and docs are never limited),
//! names who is asking, asks the limiter, and answers 429 problem JSON — or adds the
//! `RateLimit-Policy` / `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers).
//!
//! Every request counts against its client IP, and against who it claims to be when that
//! claim costs nothing to check and cannot be made for someone else: a verified access token
//! (its user) or a presented API key (a digest of the whole key: only its holder can present
//! it, so nobody spends a key's quota without the key; checking the key itself costs a
//! database round trip, which the limiter must not add). The project's shared quota is not
//! counted here but by the membership check ([`crate::ratelimit::meter`]): a stranger's
//! requests never spend it. The `Authorization` header is read by the same parser
//! authentication uses ([`crate::auth::scheme`]), so `bearer` counts like `Bearer`.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use poem::{
    Request, Response,
    http::{HeaderValue, Method, header},
};

use super::correlation::CorrelationId;
use crate::{
    auth::{
        cookies,
        principal::{self, API_KEY_HEADER},
        scheme::{self, Authorization},
    },
    config::{Quota, TrustedNet},
    error::ErrorCode,
    problem::Problem,
    ratelimit::{Class, Verdict, gcra::Outcome, meter::PROJECT_MULTIPLE},
    routes::RouteEntry,
    state::AppState,
};

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
async fn identities(state: &AppState, req: &Request) -> Vec<(String, u32)> {
    let mut ids = Vec::with_capacity(2);
    if let Some(ip) = client_ip(req, &state.limiter().config().trusted_proxies) {
        ids.push((ip_key(ip), 1));
    }
    if let Some(key) = req.headers().get(API_KEY_HEADER) {
        // The digest, never the key: limiter keys are visible to anyone who can read Redis.
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        ids.push((format!("key:{hex}"), 1));
        return ids;
    }
    let user_credential = match scheme::authorization(req.headers()) {
        Authorization::Bearer(_) => true,
        Authorization::Other => false,
        Authorization::Absent => cookies::get(req.headers(), cookies::ACCESS).is_some(),
    };
    // The request's one authentication (the handler reuses its outcome); a refused token
    // simply adds no user key (the handler answers the 401).
    if user_credential && let Some(user) = principal::user_of(state, req).await {
        ids.push((format!("user:{user}"), 1));
    }
    ids
}

/// Asks the limiter about `req` under `class` (from [`class_to_check`]).
pub async fn decide(state: &AppState, class: Class, req: &Request) -> Verdict {
    let ids = identities(state, req).await;
    state.limiter().check(class, &ids).await
}

/// The class to check `req` against, or `None` when its route is never limited or its
/// class has no quota. Synchronous, so unlimited requests never build [`decide`]'s future.
pub fn class_to_check(state: &AppState, route: Option<&RouteEntry>, req: &Request) -> Option<Class> {
    classify(route, req).filter(|class| state.limiter().quota(*class).is_some())
}

/// One policy of the `RateLimit` fields: a class quota per client (named for the class), or a
/// project's shared one (`<class>-project`, [`PROJECT_MULTIPLE`] times the quota).
struct Policy {
    name: String,
    /// How the refusal names it: `reads`, `project's shared reads`.
    described: String,
    limit: u64,
    window: u64,
}

impl Policy {
    fn client(class: Class, quota: Quota) -> Self {
        Self { name: class.name().into(), described: class.name().into(), limit: quota.limit.into(), window: quota.window.as_secs() }
    }

    fn project(class: Class, quota: Quota) -> Self {
        Self {
            name: format!("{}-project", class.name()),
            described: format!("project's shared {}", class.name()),
            limit: u64::from(quota.limit) * u64::from(PROJECT_MULTIPLE),
            window: quota.window.as_secs(),
        }
    }
}

/// Sets `RateLimit-Policy` and `RateLimit` to `items`, in order.
fn set_fields(resp: &mut Response, items: &[(Policy, Outcome)]) {
    let join = |item: &dyn Fn(&Policy, &Outcome) -> String| items.iter().map(|(p, o)| item(p, o)).collect::<Vec<_>>().join(", ");
    let policy = join(&|p, _| format!("\"{}\";q={};w={}", p.name, p.limit, p.window));
    let limit = join(&|p, o| format!("\"{}\";r={};t={}", p.name, o.remaining, o.reset_secs));
    for (name, value) in [("ratelimit-policy", policy), ("ratelimit", limit)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, value);
        }
    }
}

/// Adds the rate-limit fields to a served response: the chain's verdict, and the project
/// meter's when it charged.
pub fn annotate(resp: &mut Response, class: Class, quota: Quota, outcome: Outcome, project: Option<Verdict>) {
    let mut items = vec![(Policy::client(class, quota), outcome)];
    if let Some(Verdict::Allowed(class, quota, outcome)) = project {
        items.push((Policy::project(class, quota), outcome));
    }
    set_fields(resp, &items);
}

/// The 429 answer: problem JSON naming the violated policy, `Retry-After` equal to `t`.
pub fn refused(class: Class, quota: Quota, outcome: Outcome, path: &str, id: &CorrelationId) -> Response {
    refusal(Policy::client(class, quota), outcome, path, id)
}

/// The 429 of a project whose shared quota the membership check found used up.
pub fn project_refused(class: Class, quota: Quota, outcome: Outcome, path: &str, id: &CorrelationId) -> Response {
    refusal(Policy::project(class, quota), outcome, path, id)
}

fn refusal(policy: Policy, outcome: Outcome, path: &str, id: &CorrelationId) -> Response {
    let detail = format!(
        "the {} quota of {} requests per {} s is used up; retry after {} s",
        policy.described, policy.limit, policy.window, outcome.reset_secs
    );
    let mut problem = Problem::new(ErrorCode::RateLimited, detail).for_request(path, &id.0);
    problem.type_ = QUOTA_EXCEEDED.into();
    problem.violated_policies = Some(vec![policy.name.clone()]);
    let mut resp = problem.into_response();
    set_fields(&mut resp, &[(policy, outcome)]);
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

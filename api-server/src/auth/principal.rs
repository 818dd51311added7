//! Who is calling. The [`Auth`] extractor authenticates every protected operation: an
//! `X-API-Key`, an `Authorization: Bearer` access token, or the access-token cookie (then an
//! unsafe method must come from an allowed `Origin`: CSRF protection). Every failure is the
//! same 401 with `WWW-Authenticate`; the reason is logged, never told.

use poem::{Request, RequestBody, http::Method};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};
use uuid::Uuid;

use super::{
    cookies,
    request::{Refusal as Failure, RequestAuth},
    scheme::Authorization,
};
use crate::{
    access::{Caller, Principal, unauthorized},
    error::{ApiError, ErrorCode},
    middleware::correlation::CorrelationId,
    state::AppState,
};

/// Header carrying a project API key.
pub const API_KEY_HEADER: &str = "X-API-Key";

/// An authenticated caller, for operations outside any one project (those inside one take
/// [`crate::api::access::Project`], which also charges the project's quota).
pub struct Auth(pub Caller);

/// Like [`Auth`] but only a user (an access token), never an API key.
pub struct UserAuth(pub Caller, pub Uuid);

/// The security schemes of operations any caller (user or key) may use.
pub const SCHEMES: &[&str] = &["BearerToken", "ApiKey", "AccessCookie"];

/// Registers the security schemes in the spec.
pub fn register_schemes(registry: &mut Registry) {
    registry.create_security_scheme(
        "BearerToken",
        MetaSecurityScheme {
            ty: "http",
            description: Some("Access token (JWT) from `POST /api/v1/auth/refresh`, `jeex-api token issue` or dev-login."),
            name: None,
            key_in: None,
            scheme: Some("bearer"),
            bearer_format: Some("JWT"),
            flows: None,
            openid_connect_url: None,
        },
    );
    registry.create_security_scheme(
        "ApiKey",
        MetaSecurityScheme {
            ty: "apiKey",
            description: Some("Project API key; acts only in its own project, with its role."),
            name: Some(API_KEY_HEADER),
            key_in: Some("header"),
            scheme: None,
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
    registry.create_security_scheme(
        "AccessCookie",
        MetaSecurityScheme {
            ty: "apiKey",
            description: Some("The httpOnly access-token cookie; unsafe methods must come from an allowed Origin."),
            name: Some(cookies::ACCESS),
            key_in: Some("cookie"),
            scheme: None,
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
}

/// Authenticates `req`, once per request: every later call (the limiter, the upload check and
/// the extractor all ask) gets the first one's outcome from the request's [`RequestAuth`].
pub async fn authenticate(req: &Request) -> Result<Caller, ApiError> {
    let state = req.data::<AppState>().ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    caller(state, req).await
}

/// [`authenticate`], for middleware that runs before the state is in the request.
pub async fn caller(state: &AppState, req: &Request) -> Result<Caller, ApiError> {
    let correlation_id = req.extensions().get::<CorrelationId>().map(|c| c.0.clone()).unwrap_or_default();
    let result = match req.extensions().get::<RequestAuth>() {
        Some(auth) => auth.principal(identify_logged(state, req, auth.project())).await,
        // Outside the chain (never in the server): the project comes from the path.
        None => identify_logged(state, req, crate::routes::project_of(req.uri().path())).await,
    };
    match result {
        Ok(principal) => Ok(Caller { principal, correlation_id }),
        Err(Failure::Unavailable(e)) => Err(e),
        Err(Failure::Rejected(reason)) => Err(match reason {
            "cross-site request" => {
                ApiError::Status(ErrorCode::Forbidden, "cookie-authenticated changes must come from an allowed origin".into())
            }
            _ => unauthorized(),
        }),
    }
}

/// The verified user of `req`'s bearer token or cookie, for the limiter's per-user quota:
/// `None` for anyone else (an API key, a ticket's key, no or a refused credential).
pub async fn user_of(state: &AppState, req: &Request) -> Option<uuid::Uuid> {
    match caller(state, req).await {
        Ok(Caller { principal: Principal::User { user_id }, .. }) => Some(user_id),
        _ => None,
    }
}

/// [`identify`], logging a rejection's reason (once per request: the outcome is remembered).
async fn identify_logged(state: &AppState, req: &Request, project: Option<uuid::Uuid>) -> Result<Principal, Failure> {
    let result = identify(state, req, project).await;
    if let Err(Failure::Rejected(reason)) = &result {
        tracing::info!(reason, "authentication failed");
    }
    result
}

/// A stream ticket from the query, on an event-stream path only.
fn ticket_of(req: &Request) -> Option<String> {
    if !req.uri().path().ends_with("/events") {
        return None;
    }
    req.uri().query()?.split('&').find_map(|pair| pair.strip_prefix("ticket=")).map(str::to_owned)
}

async fn identify(state: &AppState, req: &Request, project: Option<uuid::Uuid>) -> Result<Principal, Failure> {
    if let Some(ticket) = ticket_of(req) {
        let grant = state.access_tokens().verify_ticket(&ticket).await.map_err(Failure::Rejected)?;
        if project != Some(grant.project_id) {
            return Err(Failure::Rejected("stream ticket is for another project"));
        }
        return grant.principal().ok_or(Failure::Rejected("stream ticket is malformed"));
    }
    if let Some(key) = req.headers().get(API_KEY_HEADER) {
        let key = key.to_str().map_err(|_| Failure::Rejected("API key is not text"))?;
        return super::api_keys::authenticate(&state.deps().db, key).await.map_err(|e| match e {
            super::api_keys::LookupError::Rejected(r) => Failure::Rejected(r),
            super::api_keys::LookupError::Database(e) => Failure::Unavailable(e),
        });
    }
    match super::scheme::authorization(req.headers()) {
        Authorization::Bearer(token) => {
            return state.access_tokens().verify(token).await.map(|user_id| Principal::User { user_id }).map_err(Failure::Rejected);
        }
        Authorization::Other => return Err(Failure::Rejected("Authorization is not a Bearer token")),
        Authorization::Absent => {}
    }
    if let Some(token) = cookies::get(req.headers(), cookies::ACCESS) {
        if !is_safe(req.method()) && !origin_allowed(state, req) {
            return Err(Failure::Rejected("cross-site request"));
        }
        return state.access_tokens().verify(&token).await.map(|user_id| Principal::User { user_id }).map_err(Failure::Rejected);
    }
    Err(Failure::Rejected("no credentials"))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// CSRF defence for cookies: browsers always send `Origin` on cross-origin and same-origin
/// unsafe requests; it must be one of the configured CORS origins.
fn origin_allowed(state: &AppState, req: &Request) -> bool {
    let Some(origin) = req.headers().get(poem::http::header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    state.config().cors.origins.iter().any(|allowed| allowed == origin)
}

impl<'a> ApiExtractor<'a> for Auth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        SCHEMES.to_vec()
    }

    async fn from_request(req: &'a Request, _body: &mut RequestBody, _opts: ExtractParamOptions<()>) -> poem::Result<Self> {
        Ok(Self(authenticate(req).await?))
    }
}

impl<'a> ApiExtractor<'a> for UserAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec!["BearerToken", "AccessCookie"]
    }

    async fn from_request(req: &'a Request, _body: &mut RequestBody, _opts: ExtractParamOptions<()>) -> poem::Result<Self> {
        let caller = authenticate(req).await?;
        match caller.principal {
            Principal::User { user_id } => Ok(Self(caller, user_id)),
            Principal::ApiKey { .. } => {
                Err(ApiError::Status(ErrorCode::Forbidden, "this operation needs a user's access token, not an API key".into()).into())
            }
        }
    }
}

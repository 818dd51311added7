//! `/api/v1/auth`: refresh, logout, me, and the development-only login. Token responses also
//! set the httpOnly cookies, so a browser app never handles tokens in script.

use poem::{
    IntoResponse, Response,
    http::{HeaderValue, header},
    web::Data,
};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    payload::Json,
    registry::{MetaHeader, MetaResponses, Registry},
    types::Type,
};

use super::{ApiTags, responses::Deleted, text::Text, validation::Check, views::User};
use crate::{
    access::unauthorized,
    auth::{
        cookies,
        principal::UserAuth,
        tokens::{self, TokenPair},
    },
    config::Environment,
    db::{refresh_tokens, users},
    error::{ApiError, ErrorCode},
    state::AppState,
};

/// A refresh or logout request. Browser apps relying on the refresh cookie send `{}`.
#[derive(Object, Default)]
#[oai(example)]
#[oai(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    pub refresh_token: Option<Text>,
}

/// Development login.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct DevLogin {
    /// Email; the user is created on first login.
    #[oai(validator(max_length = 254, pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+$"))]
    pub email: Text,
    /// Display name (kept from earlier logins when omitted).
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    ))]
    pub name: Option<Text>,
}

impl poem_openapi::types::Example for DevLogin {
    fn example() -> Self {
        Self { email: "ann@example.com".into(), name: Some("Ann".into()) }
    }
}

/// A response plus `Set-Cookie` headers (several, which derived responses cannot carry).
pub struct WithCookies<R> {
    inner: R,
    cookies: Vec<HeaderValue>,
}

impl<R: IntoResponse> IntoResponse for WithCookies<R> {
    fn into_response(self) -> Response {
        let mut resp = self.inner.into_response();
        for cookie in self.cookies {
            resp.headers_mut().append(header::SET_COOKIE, cookie);
        }
        resp
    }
}

impl<R: ApiResponse> ApiResponse for WithCookies<R> {
    fn meta() -> MetaResponses {
        let mut meta = R::meta();
        for resp in &mut meta.responses {
            resp.headers.push(MetaHeader {
                name: "Set-Cookie".into(),
                description: Some("The httpOnly auth cookies (`jeex_access`, `jeex_refresh`)".into()),
                required: false,
                deprecated: false,
                schema: String::schema_ref(),
            });
        }
        meta
    }

    fn register(registry: &mut Registry) {
        R::register(registry);
    }
}

/// Sets both cookies; with `cookie_only` the body leaves the tokens out.
fn session(state: &AppState, mut pair: TokenPair, cookie_only: bool) -> WithCookies<Json<TokenPair>> {
    let secure = state.config().auth.cookie_secure;
    let access = pair.access_token.clone().unwrap_or_default();
    let refresh = pair.refresh_token.clone().unwrap_or_default();
    let cookies = vec![
        cookies::set(cookies::ACCESS, &access, "/", pair.expires_in, secure),
        cookies::set(cookies::REFRESH, &refresh, cookies::REFRESH_PATH, pair.refresh_expires_in, secure),
    ];
    if cookie_only {
        pair.access_token = None;
        pair.refresh_token = None;
    }
    WithCookies { inner: Json(pair), cookies }
}

/// The presented refresh token and whether it came from the cookie.
fn presented(body: &RefreshRequest, req: &poem::Request) -> Option<(String, bool)> {
    match &body.refresh_token {
        Some(token) => Some((token.0.clone(), false)),
        None => cookies::get(req.headers(), cookies::REFRESH).map(|t| (t, true)),
    }
}

/// Auth endpoints.
pub struct AuthApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Exchange a refresh token for a new pair. Each refresh token works once; presenting a
    /// used one revokes every token descended from the same login.
    #[oai(path = "/auth/refresh", method = "post")]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        body: Json<RefreshRequest>,
    ) -> Result<WithCookies<Json<TokenPair>>, ApiError> {
        let (token, from_cookie) = presented(&body.0, req).ok_or_else(unauthorized)?;
        let db = &state.deps().db;
        match refresh_tokens::rotate(db, &token, state.config().auth.refresh_ttl).await? {
            Ok((user_id, next)) => {
                let pair = tokens::pair(state.access_tokens(), state.config().auth.refresh_ttl, user_id, next)?;
                Ok(session(&state, pair, from_cookie))
            }
            Err(refused) => {
                if refused == refresh_tokens::Refused::Reused {
                    tracing::warn!("a used refresh token was presented again; its family is revoked");
                } else {
                    tracing::info!(reason = refused.reason(), "refresh refused");
                }
                Err(unauthorized())
            }
        }
    }

    /// End the session: revokes the refresh token's family and clears the cookies.
    #[oai(path = "/auth/logout", method = "post")]
    async fn logout(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        body: Json<RefreshRequest>,
    ) -> Result<WithCookies<Deleted>, ApiError> {
        if let Some((token, _)) = presented(&body.0, req) {
            refresh_tokens::revoke(&state.deps().db, &token).await?;
        }
        let secure = state.config().auth.cookie_secure;
        let cookies =
            vec![cookies::set(cookies::ACCESS, "", "/", 0, secure), cookies::set(cookies::REFRESH, "", cookies::REFRESH_PATH, 0, secure)];
        Ok(WithCookies { inner: Deleted::NoContent, cookies })
    }

    /// The signed-in user.
    #[oai(path = "/auth/me", method = "get")]
    async fn me(&self, state: Data<&AppState>, auth: UserAuth) -> Result<Json<User>, ApiError> {
        users::get(&state.deps().db, auth.1).await?.map(|u| Json(u.into())).ok_or_else(unauthorized)
    }

    /// Development only (404 otherwise): sign in as any email, creating the user.
    #[oai(path = "/auth/dev-login", method = "post")]
    async fn dev_login(&self, state: Data<&AppState>, body: Json<DevLogin>) -> Result<WithCookies<Json<TokenPair>>, ApiError> {
        if state.config().env != Environment::Development {
            return Err(ApiError::Status(ErrorCode::NotFound, "no resource at this path".into()));
        }
        let mut check = Check::default();
        let email = check.email("/email", &body.email);
        let name = body.name.as_deref().map(|n| check.text("/name", n, 200));
        check.finish()?;
        let db = &state.deps().db;
        let user = users::login(db, &email, name.as_deref()).await?;
        let pair = tokens::issue(state.access_tokens(), state.config().auth.refresh_ttl, db, user.id).await?;
        Ok(session(&state, pair, false))
    }
}

impl poem_openapi::types::Example for RefreshRequest {
    fn example() -> Self {
        Self { refresh_token: Some("q3J0b2tlbi1leGFtcGxlLW5vdC1hLXJlYWwtb25lLTEyMzQ1Ng".into()) }
    }
}

//! Authentication: access tokens (JWT), refresh tokens, per-project API keys, and the request
//! extractor that turns any of them into a [`principal::Caller`].

pub mod api_keys;
pub mod cookies;
pub mod jwt;
pub mod keys;
pub mod principal;
pub mod request;
pub mod scheme;
pub mod secrets;
pub mod tokens;

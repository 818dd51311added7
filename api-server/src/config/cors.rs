//! CORS: the origins allowed to call the API from a browser, and whether they may send
//! credentials.

use super::{
    error::{ConfigError, err},
    parse::parse_bool,
};

/// CORS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    /// Exact origins (scheme://host[:port]) allowed to call the API.
    pub origins: Vec<String>,
    /// `*` was given: any origin may read responses, never with credentials.
    pub any_origin: bool,
    /// Listed origins may send credentials.
    pub allow_credentials: bool,
}

/// Reads `JEEX_CORS_ORIGINS` (in development `http://localhost:5200` unless set) and
/// `JEEX_CORS_ALLOW_CREDENTIALS`.
pub(super) fn parse(get: &impl Fn(&str) -> Option<String>, dev: bool) -> Result<CorsConfig, ConfigError> {
    let allow_credentials = match get("JEEX_CORS_ALLOW_CREDENTIALS") {
        None => true,
        Some(v) => parse_bool("JEEX_CORS_ALLOW_CREDENTIALS", &v)?,
    };
    let raw = get("JEEX_CORS_ORIGINS").unwrap_or_else(|| if dev { "http://localhost:5200".into() } else { String::new() });
    let mut origins = Vec::new();
    let mut any_origin = false;
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "*" {
            any_origin = true;
            continue;
        }
        let valid = item.split_once("://").is_some_and(|(scheme, host)| {
            matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/') && !host.contains('*')
        });
        if !valid {
            return Err(err(
                "JEEX_CORS_ORIGINS",
                format!("{item:?} is not an origin (scheme://host[:port], no path)"),
                "https://app.example.com,http://localhost:5200",
            ));
        }
        origins.push(item.to_owned());
    }
    Ok(CorsConfig { origins, any_origin, allow_credentials })
}

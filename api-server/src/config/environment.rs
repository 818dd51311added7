//! `JEEX_ENV`: development, staging or production, and what is assumed when it is unset.

use super::error::{ConfigError, err};

/// Where the process runs; production refuses insecure settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local work: pretty logs, error details, private database when none is configured.
    Development,
    /// Pre-production: production defaults (JSON logs, no error details, `DATABASE_URL`
    /// required), but insecure settings are allowed.
    Staging,
    /// Production: insecure settings are refused at start-up.
    Production,
}

impl Environment {
    /// The name used in `JEEX_ENV`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }
}

/// Reads `JEEX_ENV`; unset, it is production when `production_by_default` (a database is
/// named), development otherwise.
pub(super) fn parse(get: &impl Fn(&str) -> Option<String>, production_by_default: bool) -> Result<Environment, ConfigError> {
    match get("JEEX_ENV").as_deref() {
        None if production_by_default => Ok(Environment::Production),
        None | Some("development") => Ok(Environment::Development),
        Some("staging") => Ok(Environment::Staging),
        Some("production") => Ok(Environment::Production),
        Some(other) => Err(err("JEEX_ENV", format!("unknown environment {other:?}; use development, staging or production"), "production")),
    }
}

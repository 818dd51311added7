//! Typed configuration, read from the environment and validated once at start-up.
//!
//! Every variable is listed in [`VARIABLES`] (the README table is checked against it), and
//! every problem is reported as a [`ConfigError`] naming the variable, what is wrong and an
//! example of a good value — one line, never a panic.
//!
//! [`Config`] is the one entry point and runs the validation in a fixed order; each concern
//! (CORS, database, auth, rate limits, events, operations, vectors, telemetry…) reads its own
//! variables in a file of its own. The shared value parsers and the error type are leaves:
//! the concerns import them and nothing else from this module.

mod auth;
mod cors;
mod database;
mod documents;
mod environment;
mod error;
mod events;
mod operations;
mod parse;
mod rate_limit;
mod redis;
mod secret;
mod telemetry;
mod variables;
mod vectors;

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

pub use jeex_types::VectorDistance;

pub use self::{
    auth::AuthConfig,
    cors::CorsConfig,
    database::{DatabaseSource, PoolConfig},
    documents::MetadataLimits,
    environment::Environment,
    error::ConfigError,
    events::EventsConfig,
    operations::OperationsConfig,
    parse::parse_size,
    rate_limit::{Quota, RateLimitConfig, TrustedNet},
    secret::Secret,
    telemetry::{LogFormat, TelemetryConfig},
    variables::{VARIABLES, Variable},
    vectors::{DEFAULT_VECTOR_DIM, QdrantConfig, VectorConfig, VectorEngine},
};
use self::{
    error::err,
    parse::{parse_bool, parse_duration, parse_with},
};

/// Appended to a configuration error when production rules apply only because `JEEX_ENV` is
/// unset while `DATABASE_URL` is set.
pub const PRODUCTION_BY_DEFAULT: &str = "; note: JEEX_ENV is unset and DATABASE_URL is set, so production rules apply \
     (set JEEX_ENV=production to say so, or JEEX_ENV=development to develop against this database)";

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Deployment environment.
    pub env: Environment,
    /// Production only because `JEEX_ENV` is unset and `DATABASE_URL` is set: errors found
    /// later (the signing key) then say so.
    pub production_by_default: bool,
    /// Listen address.
    pub http_addr: SocketAddr,
    /// CORS policy.
    pub cors: CorsConfig,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Largest body `POST …/operations` accepts, in bytes (at least `body_limit`).
    pub import_body_limit: usize,
    /// Per-request time limit.
    pub request_timeout: Duration,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Put internal details into 500 bodies.
    pub expose_error_details: bool,
    /// Per-dependency health-check timeout.
    pub health_timeout: Duration,
    /// Database source.
    pub database: DatabaseSource,
    /// URL `migrate` connects with (the owner role); `None` means "the same as the server".
    pub migrate_database_url: Option<Secret>,
    /// Largest document content, in bytes.
    pub document_max_bytes: usize,
    /// Limits on a document's `metadata`.
    pub metadata: MetadataLimits,
    /// Token settings.
    pub auth: AuthConfig,
    /// Pool settings.
    pub pool: PoolConfig,
    /// Redis URL, if configured (may carry a password).
    pub redis_url: Option<Secret>,
    /// Redis connection ceiling.
    pub redis_max_connections: u32,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// Rate limiting.
    pub rate_limit: RateLimitConfig,
    /// Operations and their workers.
    pub operations: OperationsConfig,
    /// Event history.
    pub events: EventsConfig,
    /// Qdrant, if configured.
    pub qdrant: Option<QdrantConfig>,
    /// The vector index (Qdrant, embedded, or none).
    pub vectors: VectorConfig,
    /// Telemetry.
    pub telemetry: TelemetryConfig,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads from a map; used by tests to avoid touching the process environment.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| vars.get(name).cloned())
    }

    /// Reads through `lookup`, validating every value. Empty strings count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        // Secure by default: development mode only when asked for, or for the first look
        // (no DATABASE_URL: the private cluster). A deployment that names a database and
        // forgets JEEX_ENV gets production rules, never dev-login or error details.
        let production_by_default = get("JEEX_ENV").is_none() && get("DATABASE_URL").is_some();
        Self::parse(&get, production_by_default).map_err(|mut e| {
            if production_by_default {
                // Name the choice nobody made: the fix may be JEEX_ENV itself.
                e.problem.push_str(PRODUCTION_BY_DEFAULT);
            }
            e
        })
    }

    fn parse(get: &impl Fn(&str) -> Option<String>, production_by_default: bool) -> Result<Self, ConfigError> {
        let env = environment::parse(get, production_by_default)?;
        let dev = env == Environment::Development;

        let http_addr = parse_with(get, "JEEX_HTTP_ADDR", "127.0.0.1:8080", "0.0.0.0:8080", |v| {
            SocketAddr::from_str(v).map_err(|_| format!("{v:?} is not an address:port"))
        })?;

        let cors = cors::parse(get, dev)?;
        let body_limit = parse_with(get, "JEEX_BODY_LIMIT", "1MiB", "2MiB", parse_size)?;
        // Unset, it never falls below a raised JEEX_BODY_LIMIT (which imports needed before).
        let import_body_limit = match get("JEEX_IMPORT_BODY_LIMIT") {
            None => body_limit.max(65 << 20),
            Some(_) => parse_with(get, "JEEX_IMPORT_BODY_LIMIT", "65MiB", "65MiB", |v| match parse_size(v)? {
                n if n < body_limit => Err(format!("{v:?} is below JEEX_BODY_LIMIT ({body_limit} bytes), which every route accepts")),
                n => Ok(n),
            })?,
        };
        let request_timeout = parse_duration(get, "JEEX_REQUEST_TIMEOUT", "30s")?;
        let shutdown_grace = parse_duration(get, "JEEX_SHUTDOWN_GRACE", "20s")?;
        let health_timeout = parse_duration(get, "JEEX_HEALTH_TIMEOUT", "2s")?;
        let expose_error_details = match get("JEEX_EXPOSE_ERROR_DETAILS") {
            None => dev,
            Some(v) => parse_bool("JEEX_EXPOSE_ERROR_DETAILS", &v)?,
        };

        let data_dir = PathBuf::from(get("JEEX_DATA_DIR").unwrap_or_else(|| ".jeex".into()));
        let database = database::parse_source(get, env, &data_dir)?;
        let migrate_database_url = database::parse_migrate_url(get)?;
        let document_max_bytes = documents::parse_content_limit(get)?;
        let metadata = documents::parse_metadata(get)?;
        let auth = auth::parse(get, dev, &data_dir)?;
        let pool = database::parse_pool(get)?;
        let redis = redis::parse(get)?;
        let rate_limit = rate_limit::parse(get)?;
        let events = events::parse(get)?;
        let operations = operations::parse(get)?;
        let (qdrant, vectors) = vectors::parse(get, &data_dir)?;
        let telemetry = telemetry::parse(get, dev)?;

        let config = Config {
            env,
            production_by_default,
            http_addr,
            cors,
            body_limit,
            import_body_limit,
            request_timeout,
            shutdown_grace,
            expose_error_details,
            health_timeout,
            database,
            migrate_database_url,
            document_max_bytes,
            metadata,
            auth,
            pool,
            redis_url: redis.url,
            redis_max_connections: redis.max_connections,
            redis_prefix: redis.prefix,
            rate_limit,
            operations,
            events,
            qdrant,
            vectors,
            telemetry,
        };
        config.refuse_insecure()?;
        Ok(config)
    }

    /// In production, settings that would weaken security are errors, not warnings.
    fn refuse_insecure(&self) -> Result<(), ConfigError> {
        if self.env != Environment::Production {
            return Ok(());
        }
        if self.cors.any_origin && self.cors.allow_credentials {
            return Err(err(
                "JEEX_CORS_ORIGINS",
                "`*` together with JEEX_CORS_ALLOW_CREDENTIALS=true is refused in production; list the origins".into(),
                "https://app.example.com",
            ));
        }
        if self.expose_error_details {
            return Err(err("JEEX_EXPOSE_ERROR_DETAILS", "internal error details must not be exposed in production".into(), "false"));
        }
        if self.auth.jwks_url.as_deref().is_some_and(|u| u.starts_with("http://")) {
            return Err(err(
                "JEEX_JWT_JWKS_URL",
                "must be https in production: whoever can alter the response could sign tokens".into(),
                "https://auth.example.com/.well-known/jwks.json",
            ));
        }
        if !self.auth.cookie_secure {
            return Err(err("JEEX_COOKIE_SECURE", "auth cookies must be Secure in production".into(), "true"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_map(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.env, Environment::Development);
        assert_eq!(c.vectors.dim, DEFAULT_VECTOR_DIM, "the committed OpenAPI document shows this default");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.body_limit, 1 << 20);
        assert_eq!(c.import_body_limit, 65 << 20);
        assert_eq!(cfg(&[("JEEX_BODY_LIMIT", "100MiB")]).unwrap().import_body_limit, 100 << 20, "never below the general limit");
        assert_eq!(c.pool.size, 20);
        assert_eq!(c.pool.max_overflow, 10);
        assert_eq!(c.pool.max_connections(), 30);
        assert_eq!(c.redis_max_connections, 50);
        assert_eq!(c.database, DatabaseSource::PrivateCluster(".jeex".into()));
        assert_eq!(c.telemetry.log_format, LogFormat::Pretty);
        assert!(c.expose_error_details);
        assert_eq!(c.cors.origins, vec!["http://localhost:5200".to_string()]);
        assert_eq!(c.auth.algorithm, jsonwebtoken::Algorithm::RS256);
        assert_eq!(c.auth.access_ttl, Duration::from_secs(15 * 60));
        assert_eq!(c.auth.dev_key_dir, Some(PathBuf::from(".jeex/jwt")));
        assert!(!c.auth.cookie_secure);
        assert_eq!(c.document_max_bytes, 512 << 10);
        assert_eq!(c.rate_limit.writes, Some(Quota { limit: 60, window: Duration::from_secs(60) }));
        assert!(c.rate_limit.fail_open && c.rate_limit.trusted_proxies.is_empty());
        assert_eq!(c.operations.retention, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(cfg(&[("JEEX_OPERATION_RETENTION", "off")]).unwrap().operations.retention, None);
        assert_eq!(cfg(&[("JEEX_OPERATION_RETENTION", "36h")]).unwrap().operations.retention, Some(Duration::from_secs(36 * 3600)));
    }

    #[test]
    fn bad_values_name_the_variable_in_one_line() {
        for (var, val) in [
            ("JEEX_HTTP_ADDR", "nonsense"),
            ("JEEX_BODY_LIMIT", "lots"),
            ("JEEX_IMPORT_BODY_LIMIT", "512KiB"),
            ("JEEX_REQUEST_TIMEOUT", "0s"),
            ("JEEX_DB_POOL_SIZE", "0"),
            ("JEEX_ENV", "prod"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("JEEX_CORS_ORIGINS", "example.com"),
            ("REDIS_URL", "localhost:6379"),
            ("RUST_LOG", "info,[unclosed"),
            ("JEEX_JWT_ALGORITHM", "none"),
            ("JEEX_JWT_LEEWAY", "5m"),
            ("JEEX_DOCUMENT_MAX_SIZE", "huge"),
            ("JEEX_RATE_LIMIT_READS", "lots"),
            ("JEEX_RATE_LIMIT_WRITES", "10/0s"),
            ("JEEX_RATE_LIMIT_ON_REDIS_ERROR", "maybe"),
            ("JEEX_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("JEEX_OPERATION_RETENTION", "30s"),
            ("JEEX_OPERATION_RETENTION", "forever"),
        ] {
            let e = cfg(&[(var, val)]).unwrap_err();
            assert_eq!(e.variable, var);
            let line = e.to_string();
            assert!(line.contains(var) && line.contains("example:") && !line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn production_requires_database_and_refuses_insecure_settings() {
        assert_eq!(cfg(&[("JEEX_ENV", "production")]).unwrap_err().variable, "DATABASE_URL");
        let db = ("DATABASE_URL", "postgres://u@h/d");
        let prod = ("JEEX_ENV", "production");
        let key = ("JEEX_JWT_PRIVATE_KEY", "/k/a.key.pem");
        let public = ("JEEX_JWT_PUBLIC_KEYS", "/k/a.pub.pem");
        assert_eq!(cfg(&[prod, db, key, public, ("JEEX_CORS_ORIGINS", "*")]).unwrap_err().variable, "JEEX_CORS_ORIGINS");
        assert_eq!(cfg(&[prod, db, key, public, ("JEEX_EXPOSE_ERROR_DETAILS", "true")]).unwrap_err().variable, "JEEX_EXPOSE_ERROR_DETAILS");
        assert_eq!(cfg(&[prod, db, key, public, ("JEEX_COOKIE_SECURE", "false")]).unwrap_err().variable, "JEEX_COOKIE_SECURE");
        assert_eq!(cfg(&[prod, db, key, public, ("JEEX_JWT_JWKS_URL", "http://idp/jwks")]).unwrap_err().variable, "JEEX_JWT_JWKS_URL");
        let ok = cfg(&[prod, db, key, public, ("JEEX_CORS_ORIGINS", "*"), ("JEEX_CORS_ALLOW_CREDENTIALS", "false")]).unwrap();
        assert!(ok.auth.cookie_secure && ok.auth.dev_key_dir.is_none());
        assert_eq!(ok.telemetry.log_format, LogFormat::Json);
        assert!(!ok.expose_error_details);
    }

    #[test]
    fn url_errors_never_echo_secrets() {
        let e = cfg(&[("DATABASE_URL", "mysql://user:hunter2@h/d")]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let c = cfg(&[("DATABASE_URL", "postgres://user:hunter2@h/d"), ("REDIS_URL", "redis://:swordfish@h:6379/0")]).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("swordfish"), "{debug}");
    }
}

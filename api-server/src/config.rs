//! Typed configuration, read from the environment and validated once at start-up.
//!
//! Every variable is listed in [`VARIABLES`] (the README table is checked against it), and
//! every problem is reported as a [`ConfigError`] naming the variable, what is wrong and an
//! example of a good value — one line, never a panic.

use std::{collections::HashMap, fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

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

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

/// A configuration value that failed validation. Displays as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with its value.
    pub problem: String,
    /// An example of an acceptable value.
    pub example: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The problem may quote the value, and the value may be a URL with a password.
        let problem = crate::telemetry::redact::redact(&self.problem);
        write!(f, "invalid configuration: {}: {problem} (example: {}={})", self.variable, self.variable, self.example)
    }
}

impl std::error::Error for ConfigError {}

/// One documented variable: name, default (as text) and meaning.
pub struct Variable {
    /// Environment variable name.
    pub name: &'static str,
    /// Default value, or a description of the default.
    pub default: &'static str,
    /// What it controls.
    pub meaning: &'static str,
}

/// Every variable the server reads. The README's configuration table is generated from the
/// same facts and a test keeps the two in step.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "JEEX_ENV",
        default: "production with DATABASE_URL set; development without (the private first-look cluster)",
        meaning: "development, staging or production; production refuses insecure settings",
    },
    Variable { name: "JEEX_HTTP_ADDR", default: "127.0.0.1:8080", meaning: "address and port the HTTP server listens on" },
    Variable {
        name: "JEEX_CORS_ORIGINS",
        default: "http://localhost:5200 in development, none otherwise",
        meaning: "comma-separated origins allowed to call the API from a browser; `*` allows any origin without credentials",
    },
    Variable {
        name: "JEEX_CORS_ALLOW_CREDENTIALS",
        default: "true",
        meaning: "let listed origins send cookies and Authorization (never granted to `*`)",
    },
    Variable { name: "JEEX_BODY_LIMIT", default: "1MiB", meaning: "largest request body accepted; larger gets 413 (bytes, KiB, MiB)" },
    Variable {
        name: "JEEX_IMPORT_BODY_LIMIT",
        default: "65MiB (JEEX_BODY_LIMIT if larger)",
        meaning: "largest body `POST …/operations` accepts (an import's documents: room for a whole export bundle, at most 64 MiB, and the request around it); bodies over JEEX_BODY_LIMIT are read only for the project's editors, two at a time per replica (a third gets 503)",
    },
    Variable {
        name: "JEEX_REQUEST_TIMEOUT",
        default: "30s",
        meaning: "time a request may take before it is answered 503 with Retry-After",
    },
    Variable {
        name: "JEEX_SHUTDOWN_GRACE",
        default: "20s",
        meaning: "time in-flight requests get to finish after SIGTERM/SIGINT (event streams end at once)",
    },
    Variable {
        name: "JEEX_EXPOSE_ERROR_DETAILS",
        default: "true in development, false otherwise",
        meaning: "put internal error details in 500 responses; refused in production",
    },
    Variable {
        name: "JEEX_HEALTH_TIMEOUT",
        default: "2s",
        meaning: "how long each dependency check in /health and /health/ready may take",
    },
    Variable { name: "JEEX_LOG_FORMAT", default: "pretty in development, json otherwise", meaning: "json or pretty" },
    Variable { name: "RUST_LOG", default: "info", meaning: "log filter (tracing-subscriber EnvFilter syntax)" },
    Variable {
        name: "JEEX_DATA_DIR",
        default: ".jeex",
        meaning: "where development mode keeps its private PostgreSQL cluster and generated JWT key pair",
    },
    Variable {
        name: "DATABASE_URL",
        default: "unset: private cluster in development, required otherwise",
        meaning: "PostgreSQL URL the server connects with",
    },
    Variable {
        name: "JEEX_MIGRATE_DATABASE_URL",
        default: "DATABASE_URL in development; required by `migrate` otherwise",
        meaning: "PostgreSQL URL `migrate` connects with: the role that owns the tables and grants the server's role what it needs",
    },
    Variable {
        name: "JEEX_DB_POOL_SIZE",
        default: "20",
        meaning: "base pool size; connections open on demand, up to size + overflow, and close after JEEX_DB_IDLE_TIMEOUT idle",
    },
    Variable {
        name: "JEEX_DB_POOL_MAX_OVERFLOW",
        default: "10",
        meaning: "extra connections allowed under burst; size + overflow is the most the pool opens (the operator budgets with it)",
    },
    Variable { name: "JEEX_DB_ACQUIRE_TIMEOUT", default: "5s", meaning: "how long a request waits for a free connection" },
    Variable { name: "JEEX_DB_MAX_LIFETIME", default: "30m", meaning: "connections older than this are closed and replaced" },
    Variable { name: "JEEX_DB_IDLE_TIMEOUT", default: "10m", meaning: "connections idle longer than this are closed" },
    Variable { name: "REDIS_URL", default: "unset: Redis disabled", meaning: "Redis URL (redis:// or rediss://)" },
    Variable {
        name: "JEEX_REDIS_MAX_CONNECTIONS",
        default: "50",
        meaning: "ceiling on Redis connections per process; commands share one multiplexed, self-reconnecting connection, and dedicated connections (event streams) draw from the rest",
    },
    Variable {
        name: "JEEX_REDIS_PREFIX",
        default: "jeex:",
        meaning: "prefix of every Redis key the server writes, so deployments and tests can share one Redis",
    },
    Variable {
        name: "JEEX_RATE_LIMIT_READS",
        default: "300/60s",
        meaning: "GET/HEAD API requests allowed per window (`300/60s`, `600/min`), for each client IP, each user and each project; `off` disables",
    },
    Variable { name: "JEEX_RATE_LIMIT_WRITES", default: "60/60s", meaning: "other API requests allowed per window, keyed the same way" },
    Variable { name: "JEEX_RATE_LIMIT_AUTH", default: "10/60s", meaning: "/api/v1/auth/* requests allowed per window, keyed the same way" },
    Variable {
        name: "JEEX_RATE_LIMIT_ON_REDIS_ERROR",
        default: "open",
        meaning: "when the Redis limiter fails: `open` serves the request (logged, counted in jeex_rate_limit_errors_total), `closed` answers 503",
    },
    Variable {
        name: "JEEX_TRUSTED_PROXIES",
        default: "unset",
        meaning: "comma-separated proxy addresses or CIDRs whose X-Forwarded-For names the client; from any other peer it is ignored",
    },
    Variable {
        name: "JEEX_EVENTS_MAX_LEN",
        default: "10000",
        meaning: "events kept per project for resuming streams (approximately, in Redis)",
    },
    Variable { name: "JEEX_EVENTS_TTL", default: "24h", meaning: "how long a quiet project's event history is kept" },
    Variable {
        name: "JEEX_SSE_MAX_LIFETIME",
        default: "5m",
        meaning: "an event stream ends after this long with a `retry:` hint; the client reconnects with Last-Event-ID",
    },
    Variable {
        name: "JEEX_SSE_MAX_STREAMS_PER_USER",
        default: "10",
        meaning: "event streams one user (or API key) may hold open on one replica; more get 429",
    },
    Variable {
        name: "JEEX_SSE_ACCESS_CHECK",
        default: "2s",
        meaning: "how often each open event stream's access is checked again (100ms–60s): a removed member's, deleted project's or revoked key's streams end within it",
    },
    Variable {
        name: "JEEX_SSE_TICKET_TTL",
        default: "1h",
        meaning: "how long a stream ticket (`POST …/events/ticket`) opens and reopens its project's event streams (1m–24h); access is checked on every use",
    },
    Variable { name: "JEEX_WORKERS", default: "2", meaning: "operations this process runs at once (0: this replica runs none)" },
    Variable {
        name: "JEEX_OPERATION_LEASE",
        default: "10s",
        meaning: "how long a claimed operation stays with a replica without a heartbeat; after it, another replica resumes it",
    },
    Variable { name: "JEEX_OPERATION_MAX_ATTEMPTS", default: "3", meaning: "claims of one operation before it is failed" },
    Variable {
        name: "JEEX_OPERATION_RETENTION",
        default: "7d",
        meaning: "how long an ended operation and its result (an export's bundle) are kept before the workers delete them, or off to keep them; an operation's input is dropped as soon as it ends",
    },
    Variable {
        name: "JEEX_IMPORT_BATCH_SIZE",
        default: "200",
        meaning: "documents inserted per transaction (and per progress step) by documents.import",
    },
    Variable {
        name: "QDRANT_URL",
        default: "unset: the embedded engine under JEEX_DATA_DIR/vectors (when built in)",
        meaning: "Qdrant gRPC URL, e.g. http://localhost:6334 (https enables TLS)",
    },
    Variable { name: "QDRANT_API_KEY", default: "unset", meaning: "Qdrant API key" },
    Variable { name: "JEEX_QDRANT_COLLECTION", default: "jeex_embeddings", meaning: "the Qdrant collection holding document vectors" },
    Variable {
        name: "JEEX_VECTOR_DIR",
        default: "JEEX_DATA_DIR/vectors",
        meaning: "folder of the embedded vector engine (used when QDRANT_URL is unset); one process at a time",
    },
    Variable { name: "JEEX_QDRANT_TIMEOUT", default: "5s", meaning: "timeout of each Qdrant request (and of connecting)" },
    Variable {
        name: "JEEX_VECTOR_DIM",
        default: "384",
        meaning: "length of document embeddings; the collection (or embedded index) must have the same dimension",
    },
    Variable {
        name: "JEEX_VECTOR_DISTANCE",
        default: "cosine",
        meaning: "similarity of document embeddings: cosine, dot, euclid or manhattan; must match the collection",
    },
    Variable {
        name: "JEEX_JWT_ALGORITHM",
        default: "RS256",
        meaning: "the only signature algorithm accepted and used for access tokens: RS256, ES256, EdDSA or HS256",
    },
    Variable { name: "JEEX_JWT_ISSUER", default: "jeex", meaning: "`iss` of issued tokens; tokens from any other issuer are rejected" },
    Variable {
        name: "JEEX_JWT_AUDIENCE",
        default: "jeex-api",
        meaning: "`aud` of issued tokens; tokens for any other audience are rejected",
    },
    Variable {
        name: "JEEX_JWT_PRIVATE_KEY",
        default: "generated under JEEX_DATA_DIR in development; required otherwise",
        meaning: "PEM private key file (HS256: a file holding the secret, 32+ bytes) that signs access tokens; its `kid` is the file name up to the first dot",
    },
    Variable {
        name: "JEEX_JWT_PUBLIC_KEYS",
        default: "unset",
        meaning: "comma-separated verification key files: PEM (`kid` = file name up to the first dot) or JWK/JWKS JSON; list old and new keys to rotate",
    },
    Variable {
        name: "JEEX_JWT_JWKS_URL",
        default: "unset",
        meaning: "JWKS URL of further verification keys; fetched at start and again on an unknown `kid`, at most once a minute",
    },
    Variable { name: "JEEX_JWT_LEEWAY", default: "30s", meaning: "clock skew allowed on `exp`, `nbf` and `iat` (at most 60s)" },
    Variable { name: "JEEX_ACCESS_TOKEN_TTL", default: "15m", meaning: "lifetime of issued access tokens" },
    Variable {
        name: "JEEX_REFRESH_TOKEN_TTL",
        default: "30d",
        meaning: "lifetime of a refresh token; each use rotates it, and reusing a used one revokes its whole family",
    },
    Variable {
        name: "JEEX_COOKIE_SECURE",
        default: "false in development, true otherwise",
        meaning: "mark the auth cookies Secure (HTTPS only); refused as false in production",
    },
    Variable { name: "JEEX_DOCUMENT_MAX_SIZE", default: "512KiB", meaning: "largest document `content` accepted (UTF-8 bytes)" },
    Variable {
        name: "JEEX_METADATA_MAX_SIZE",
        default: "16KiB",
        meaning: "largest document `metadata` accepted (bytes of its compact JSON); lists return up to 100 documents with theirs",
    },
    Variable {
        name: "JEEX_METADATA_MAX_DEPTH",
        default: "8",
        meaning: "deepest nesting of arrays and objects inside `metadata` (1–32; the object itself is level 1)",
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        default: "unset: no export",
        meaning: "OTLP/gRPC collector for traces and metrics, e.g. http://localhost:4317",
    },
    Variable { name: "OTEL_SERVICE_NAME", default: "jeex-api", meaning: "service.name of exported telemetry" },
    Variable {
        name: "OTEL_TRACES_SAMPLER_ARG",
        default: "1.0",
        meaning: "fraction of new traces sampled (0.0–1.0); incoming sampled parents are honoured",
    },
];

/// A value that may carry credentials (a URL with a password); `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// PostgreSQL pool settings. `sqlx` has no overflow concept: the pool opens connections on
/// demand up to `size + max_overflow` and closes those idle past `idle_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Steady-state pool size (`JEEX_DB_POOL_SIZE`).
    pub size: u32,
    /// Burst allowance above `size` (`JEEX_DB_POOL_MAX_OVERFLOW`).
    pub max_overflow: u32,
    /// Wait for a free connection (`JEEX_DB_ACQUIRE_TIMEOUT`).
    pub acquire_timeout: Duration,
    /// Recycle connections after this age (`JEEX_DB_MAX_LIFETIME`).
    pub max_lifetime: Duration,
    /// Close connections idle this long (`JEEX_DB_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
}

impl PoolConfig {
    /// The most connections the pool opens.
    pub fn max_connections(&self) -> u32 {
        self.size + self.max_overflow
    }
}

/// Where the database comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseSource {
    /// `DATABASE_URL` was given.
    Url(String),
    /// Development without `DATABASE_URL`: run a private cluster under this directory.
    PrivateCluster(PathBuf),
}

impl fmt::Debug for DatabaseSource {
    // URLs may carry passwords: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(_) => f.write_str("Url(<redacted>)"),
            Self::PrivateCluster(dir) => f.debug_tuple("PrivateCluster").field(dir).finish(),
        }
    }
}

/// Qdrant connection settings.
#[derive(Clone, PartialEq, Eq)]
pub struct QdrantConfig {
    /// gRPC URL.
    pub url: String,
    /// API key, if the server requires one.
    pub api_key: Option<String>,
    /// Collection holding the vectors.
    pub collection: String,
    /// Per-request (and connect) timeout.
    pub timeout: Duration,
}

impl fmt::Debug for QdrantConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("collection", &self.collection)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How embeddings are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorDistance {
    /// Cosine similarity (higher is closer).
    Cosine,
    /// Dot product (higher is closer).
    Dot,
    /// Euclidean distance (lower is closer).
    Euclid,
    /// Manhattan distance (lower is closer).
    Manhattan,
}

impl VectorDistance {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::Dot => "dot",
            Self::Euclid => "euclid",
            Self::Manhattan => "manhattan",
        }
    }
}

/// Where document vectors are indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VectorEngine {
    /// A Qdrant server (`QDRANT_URL`).
    Server(QdrantConfig),
    /// The embedded engine, with its data in this folder.
    Embedded(PathBuf),
    /// Neither: built without the embedded engine and no `QDRANT_URL`. Vector search answers
    /// 503; full-text search works.
    Disabled,
}

/// The vector index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorConfig {
    /// Which engine.
    pub engine: VectorEngine,
    /// Collection name.
    pub collection: String,
    /// Embedding length.
    pub dim: u64,
    /// Similarity.
    pub distance: VectorDistance,
}

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

/// OpenTelemetry settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP/gRPC endpoint; `None` disables export.
    pub otlp_endpoint: Option<String>,
    /// `service.name`.
    pub service_name: String,
    /// Sampling ratio for new traces.
    pub sample_ratio: f64,
    /// Log format.
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter.
    pub log_filter: String,
}

/// Access-token and cookie settings. Key files are read by `auth::keys` at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The one accepted signature algorithm.
    pub algorithm: jsonwebtoken::Algorithm,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Signing key file; `None` in development means "generate one under the data directory".
    pub private_key: Option<PathBuf>,
    /// Verification key files.
    pub public_keys: Vec<PathBuf>,
    /// JWKS URL for further verification keys.
    pub jwks_url: Option<String>,
    /// Clock skew allowed on time claims.
    pub leeway: Duration,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// `Secure` attribute on cookies.
    pub cookie_secure: bool,
    /// Where a development key pair is generated when no key is configured.
    pub dev_key_dir: Option<PathBuf>,
}

/// Requests allowed per window for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests per window.
    pub limit: u32,
    /// Window length.
    pub window: Duration,
}

/// An address or network whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedNet {
    /// Network address.
    pub addr: std::net::IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl TrustedNet {
    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32u32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
            (IpAddr::V6(a), IpAddr::V4(b)) => (u128::from(a), u128::from(b.to_ipv6_mapped()), 128u32),
            (IpAddr::V4(a), IpAddr::V6(b)) => match b.to_ipv4_mapped() {
                Some(b) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32u32),
                None => return false,
            },
        };
        let prefix = u32::from(self.prefix);
        let shift = bits - prefix;
        prefix == 0 || (a >> shift) == (b >> shift)
    }
}

/// Event history retention and streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsConfig {
    /// Longest life of one SSE connection.
    pub max_lifetime: Duration,
    /// Open streams per principal per replica.
    pub max_streams_per_user: u32,
    /// How often open streams' access is checked again.
    pub access_check: Duration,
    /// How long a stream ticket stays valid for (re)connecting.
    pub ticket_ttl: Duration,
    /// Events kept per project.
    pub max_len: u32,
    /// Lifetime of a quiet history.
    pub ttl: Duration,
}

/// Long-running operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationsConfig {
    /// Concurrent operations per process.
    pub workers: u32,
    /// Lease length.
    pub lease: Duration,
    /// Claims before an operation is failed.
    pub max_attempts: u32,
    /// Documents per import batch.
    pub import_batch: u32,
    /// How long ended operations are kept (`None`: for ever).
    pub retention: Option<Duration>,
}

/// Rate limiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// GET/HEAD API requests (`None`: not limited).
    pub reads: Option<Quota>,
    /// Other API requests.
    pub writes: Option<Quota>,
    /// Auth endpoints.
    pub auth: Option<Quota>,
    /// Serve requests when the Redis limiter fails.
    pub fail_open: bool,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<TrustedNet>,
}

/// Appended to a configuration error when production rules apply only because `JEEX_ENV` is
/// unset while `DATABASE_URL` is set.
pub const PRODUCTION_BY_DEFAULT: &str = "; note: JEEX_ENV is unset and DATABASE_URL is set, so production rules apply \
     (set JEEX_ENV=production to say so, or JEEX_ENV=development to develop against this database)";

/// `JEEX_VECTOR_DIM` unless set.
pub const DEFAULT_VECTOR_DIM: u64 = 384;

/// Limits on a document's `metadata`: every list response carries up to 100 of them, so
/// one editor's metadata must not make every viewer's page huge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLimits {
    /// Bytes of its compact JSON.
    pub max_bytes: usize,
    /// Nesting levels, the object itself being level 1.
    pub max_depth: usize,
}

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
        let env = match get("JEEX_ENV").as_deref() {
            None if production_by_default => Environment::Production,
            None | Some("development") => Environment::Development,
            Some("staging") => Environment::Staging,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(err(
                    "JEEX_ENV",
                    format!("unknown environment {other:?}; use development, staging or production"),
                    "production",
                ));
            }
        };
        let dev = env == Environment::Development;

        let http_addr = parse_with(&get, "JEEX_HTTP_ADDR", "127.0.0.1:8080", "0.0.0.0:8080", |v| {
            SocketAddr::from_str(v).map_err(|_| format!("{v:?} is not an address:port"))
        })?;

        let cors = parse_cors(&get, dev)?;
        let body_limit = parse_with(&get, "JEEX_BODY_LIMIT", "1MiB", "2MiB", parse_size)?;
        // Unset, it never falls below a raised JEEX_BODY_LIMIT (which imports needed before).
        let import_body_limit = match get("JEEX_IMPORT_BODY_LIMIT") {
            None => body_limit.max(65 << 20),
            Some(_) => parse_with(&get, "JEEX_IMPORT_BODY_LIMIT", "65MiB", "65MiB", |v| match parse_size(v)? {
                n if n < body_limit => Err(format!("{v:?} is below JEEX_BODY_LIMIT ({body_limit} bytes), which every route accepts")),
                n => Ok(n),
            })?,
        };
        let request_timeout = parse_duration(&get, "JEEX_REQUEST_TIMEOUT", "30s")?;
        let shutdown_grace = parse_duration(&get, "JEEX_SHUTDOWN_GRACE", "20s")?;
        let health_timeout = parse_duration(&get, "JEEX_HEALTH_TIMEOUT", "2s")?;
        let expose_error_details = match get("JEEX_EXPOSE_ERROR_DETAILS") {
            None => dev,
            Some(v) => parse_bool("JEEX_EXPOSE_ERROR_DETAILS", &v)?,
        };

        let data_dir = PathBuf::from(get("JEEX_DATA_DIR").unwrap_or_else(|| ".jeex".into()));
        let database = match get("DATABASE_URL") {
            Some(url) => {
                DatabaseSource::Url(check_url("DATABASE_URL", &url, &["postgres", "postgresql"], "postgres://jeex:secret@db:5432/jeex")?)
            }
            None if dev => DatabaseSource::PrivateCluster(data_dir.clone()),
            None => {
                return Err(err(
                    "DATABASE_URL",
                    format!("is required when JEEX_ENV={}", env.as_str()),
                    "postgres://jeex:secret@db:5432/jeex",
                ));
            }
        };
        let migrate_database_url = get("JEEX_MIGRATE_DATABASE_URL")
            .map(|u| {
                check_url("JEEX_MIGRATE_DATABASE_URL", &u, &["postgres", "postgresql"], "postgres://jeex_owner:secret@db:5432/jeex")
                    .map(Secret)
            })
            .transpose()?;
        let document_max_bytes = parse_with(&get, "JEEX_DOCUMENT_MAX_SIZE", "512KiB", "1MiB", parse_size)?;
        let metadata = MetadataLimits {
            max_bytes: parse_with(&get, "JEEX_METADATA_MAX_SIZE", "16KiB", "16KiB", parse_size)?,
            max_depth: parse_with(&get, "JEEX_METADATA_MAX_DEPTH", "8", "8", |v| match v.parse::<usize>() {
                Ok(n) if (1..=32).contains(&n) => Ok(n),
                _ => Err(format!("{v:?} is not a whole number from 1 to 32")),
            })?,
        };
        let auth = parse_auth(&get, dev, &data_dir)?;
        let pool = PoolConfig {
            size: parse_count(&get, "JEEX_DB_POOL_SIZE", 20, 1)?,
            max_overflow: parse_count(&get, "JEEX_DB_POOL_MAX_OVERFLOW", 10, 0)?,
            acquire_timeout: parse_duration(&get, "JEEX_DB_ACQUIRE_TIMEOUT", "5s")?,
            max_lifetime: parse_duration(&get, "JEEX_DB_MAX_LIFETIME", "30m")?,
            idle_timeout: parse_duration(&get, "JEEX_DB_IDLE_TIMEOUT", "10m")?,
        };

        let redis_url = get("REDIS_URL")
            .map(|u| check_url("REDIS_URL", &u, &["redis", "rediss", "redis+unix", "unix"], "redis://localhost:6379/0").map(Secret))
            .transpose()?;
        let redis_max_connections = parse_count(&get, "JEEX_REDIS_MAX_CONNECTIONS", 50, 1)?;
        let redis_prefix = get("JEEX_REDIS_PREFIX").unwrap_or_else(|| "jeex:".into());
        if redis_prefix.len() > 64 || redis_prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("JEEX_REDIS_PREFIX", "must be at most 64 characters without spaces".into(), "jeex:"));
        }
        let rate_limit = parse_rate_limit(&get)?;
        let events = EventsConfig {
            max_lifetime: parse_duration(&get, "JEEX_SSE_MAX_LIFETIME", "5m")?,
            max_streams_per_user: parse_count(&get, "JEEX_SSE_MAX_STREAMS_PER_USER", 10, 1)?,
            access_check: parse_with(&get, "JEEX_SSE_ACCESS_CHECK", "2s", "2s", |v| match humantime::parse_duration(v) {
                Ok(d) if (Duration::from_millis(100)..=Duration::from_secs(60)).contains(&d) => Ok(d),
                _ => Err(format!("{v:?} is not a duration from 100ms to 60s")),
            })?,
            ticket_ttl: parse_with(&get, "JEEX_SSE_TICKET_TTL", "1h", "1h", |v| match humantime::parse_duration(v) {
                Ok(d) if (Duration::from_secs(60)..=Duration::from_secs(24 * 3600)).contains(&d) => Ok(d),
                _ => Err(format!("{v:?} is not a duration from 1m to 24h")),
            })?,
            max_len: parse_count(&get, "JEEX_EVENTS_MAX_LEN", 10_000, 10)?,
            ttl: parse_duration(&get, "JEEX_EVENTS_TTL", "24h")?,
        };
        let operations = OperationsConfig {
            workers: parse_count(&get, "JEEX_WORKERS", 2, 0)?,
            lease: parse_duration(&get, "JEEX_OPERATION_LEASE", "10s")?,
            max_attempts: parse_count(&get, "JEEX_OPERATION_MAX_ATTEMPTS", 3, 1)?,
            import_batch: parse_count(&get, "JEEX_IMPORT_BATCH_SIZE", 200, 1)?,
            retention: parse_with(&get, "JEEX_OPERATION_RETENTION", "7d", "7d", |v| match (v, humantime::parse_duration(v)) {
                ("off", _) => Ok(None),
                (_, Ok(d)) if d >= Duration::from_secs(60) => Ok(Some(d)),
                (_, Ok(_)) => Err("must be at least a minute (a client needs time to fetch a result), or off".into()),
                (_, Err(_)) => Err(format!("{v:?} is not a duration such as 12h or 7d, or off")),
            })?,
        };

        let collection = get("JEEX_QDRANT_COLLECTION").unwrap_or_else(|| "jeex_embeddings".into());
        if !collection.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') || collection.len() > 255 {
            return Err(err(
                "JEEX_QDRANT_COLLECTION",
                format!("{collection:?} may only hold letters, digits, '_' and '-'"),
                "jeex_embeddings",
            ));
        }
        let qdrant_timeout = parse_duration(&get, "JEEX_QDRANT_TIMEOUT", "5s")?;
        let qdrant = get("QDRANT_URL")
            .map(|url| {
                Ok(QdrantConfig {
                    url: check_url("QDRANT_URL", &url, &["http", "https"], "http://localhost:6334")?,
                    api_key: get("QDRANT_API_KEY"),
                    collection: collection.clone(),
                    timeout: qdrant_timeout,
                })
            })
            .transpose()?;
        let vectors = VectorConfig {
            engine: match &qdrant {
                Some(q) => VectorEngine::Server(q.clone()),
                None if cfg!(feature = "embedded-vectors") => {
                    VectorEngine::Embedded(get("JEEX_VECTOR_DIR").map(PathBuf::from).unwrap_or_else(|| data_dir.join("vectors")))
                }
                None => VectorEngine::Disabled,
            },
            collection: collection.clone(),
            dim: parse_with(&get, "JEEX_VECTOR_DIM", "384", "384", |v| match v.parse::<u64>() {
                Ok(n) if (1..=65_536).contains(&n) => Ok(n),
                _ => Err(format!("{v:?} is not a whole number from 1 to 65536")),
            })?,
            distance: parse_with(&get, "JEEX_VECTOR_DISTANCE", "cosine", "cosine", |v| match v.to_ascii_lowercase().as_str() {
                "cosine" => Ok(VectorDistance::Cosine),
                "dot" => Ok(VectorDistance::Dot),
                "euclid" | "euclidean" => Ok(VectorDistance::Euclid),
                "manhattan" => Ok(VectorDistance::Manhattan),
                _ => Err(format!("unknown distance {v:?}; use cosine, dot, euclid or manhattan")),
            })?,
        };

        let otlp_endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|u| check_url("OTEL_EXPORTER_OTLP_ENDPOINT", &u, &["http", "https"], "http://otel-collector:4317"))
            .transpose()?;
        let sample_ratio = parse_with(&get, "OTEL_TRACES_SAMPLER_ARG", "1.0", "0.25", |v| match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(format!("{v:?} is not a number between 0.0 and 1.0")),
        })?;
        let log_format = match get("JEEX_LOG_FORMAT").as_deref() {
            None if dev => LogFormat::Pretty,
            None => LogFormat::Json,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => return Err(err("JEEX_LOG_FORMAT", format!("unknown format {other:?}; use json or pretty"), "json")),
        };
        let telemetry = TelemetryConfig {
            otlp_endpoint,
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "jeex-api".into()),
            sample_ratio,
            log_format,
            log_filter: parse_with(&get, "RUST_LOG", "info", "info,jeex_api=debug", |v| {
                tracing_subscriber::EnvFilter::try_new(v).map(|_| v.to_owned()).map_err(|e| format!("{v:?} is not a log filter: {e}"))
            })?,
        };

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
            redis_url,
            redis_max_connections,
            redis_prefix,
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

fn err(variable: &'static str, problem: String, example: &'static str) -> ConfigError {
    ConfigError { variable, problem, example }
}

fn parse_with<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
    example: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let raw = get(name).unwrap_or_else(|| default.to_owned());
    parse(&raw).map_err(|problem| err(name, problem, example))
}

fn parse_duration(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
    parse_with(get, name, default, "30s", |v| match humantime::parse_duration(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".into()),
        Err(_) => Err(format!("{v:?} is not a duration such as 500ms, 30s or 5m")),
    })
}

fn parse_count(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: u32, min: u32) -> Result<u32, ConfigError> {
    parse_with(get, name, &default.to_string(), "20", |v| match v.parse::<u32>() {
        Ok(n) if n >= min && n <= 10_000 => Ok(n),
        _ => Err(format!("{v:?} is not a whole number from {min} to 10000")),
    })
}

fn parse_bool(name: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(err(name, format!("{v:?} is not true or false"), "false")),
    }
}

/// Parses `1048576`, `512KiB`, `1MiB`, `2MB` (decimal units) into bytes.
pub fn parse_size(v: &str) -> Result<usize, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: usize = digits.parse().map_err(|_| format!("{v:?} is not a size such as 1048576, 512KiB or 1MiB"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        other => return Err(format!("unknown unit {other:?}; use B, KiB, MiB, KB or MB")),
    };
    match n.checked_mul(mult) {
        Some(bytes) if (1..=1 << 30).contains(&bytes) => Ok(bytes),
        _ => Err(format!("{v:?} must be between 1 byte and 1GiB")),
    }
}

fn parse_quota(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: &str) -> Result<Option<Quota>, ConfigError> {
    parse_with(get, name, default, "120/60s", |v| {
        if v == "off" {
            return Ok(None);
        }
        let (limit, window) = v.split_once('/').ok_or_else(|| format!("{v:?} is not requests/window such as 120/60s, or off"))?;
        let limit: u32 = limit
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| format!("{limit:?} is not a count from 1 to 1000000"))?;
        // A bare unit is one of it: `600/min` reads as `600/1min`.
        let window = window.trim();
        let window = if window.starts_with(|c: char| c.is_ascii_digit()) { window.to_owned() } else { format!("1{window}") };
        let window = humantime::parse_duration(&window).map_err(|_| format!("{window:?} is not a duration such as 60s or min"))?;
        if window < Duration::from_secs(1) || window > Duration::from_secs(86_400) {
            return Err("the window must be from 1s to 24h".into());
        }
        Ok(Some(Quota { limit, window }))
    })
}

fn parse_rate_limit(get: &impl Fn(&str) -> Option<String>) -> Result<RateLimitConfig, ConfigError> {
    let fail_open = match get("JEEX_RATE_LIMIT_ON_REDIS_ERROR").as_deref() {
        None | Some("open") => true,
        Some("closed") => false,
        Some(other) => return Err(err("JEEX_RATE_LIMIT_ON_REDIS_ERROR", format!("{other:?} is not open or closed"), "open")),
    };
    let mut trusted_proxies = Vec::new();
    for item in get("JEEX_TRUSTED_PROXIES").unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (addr, prefix) = match item.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (item, None),
        };
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| err("JEEX_TRUSTED_PROXIES", format!("{item:?} is not an IP address or CIDR"), "10.0.0.0/8,127.0.0.1"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                err("JEEX_TRUSTED_PROXIES", format!("{item:?} has a prefix length outside 0–{max}"), "10.0.0.0/8,127.0.0.1")
            })?,
        };
        trusted_proxies.push(TrustedNet { addr, prefix });
    }
    Ok(RateLimitConfig {
        reads: parse_quota(get, "JEEX_RATE_LIMIT_READS", "300/60s")?,
        writes: parse_quota(get, "JEEX_RATE_LIMIT_WRITES", "60/60s")?,
        auth: parse_quota(get, "JEEX_RATE_LIMIT_AUTH", "10/60s")?,
        fail_open,
        trusted_proxies,
    })
}

fn parse_auth(get: &impl Fn(&str) -> Option<String>, dev: bool, data_dir: &std::path::Path) -> Result<AuthConfig, ConfigError> {
    use jsonwebtoken::Algorithm;
    let algorithm = parse_with(get, "JEEX_JWT_ALGORITHM", "RS256", "RS256", |v| match v {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        "HS256" => Ok(Algorithm::HS256),
        other => Err(format!("{other:?} is not supported; use RS256, ES256, EdDSA or HS256")),
    })?;
    let text = |name: &'static str, default: &str, example: &'static str| -> Result<String, ConfigError> {
        let v = get(name).unwrap_or_else(|| default.to_owned());
        if v.chars().any(char::is_control) || v.len() > 256 {
            return Err(err(name, "must be printable text of at most 256 characters".into(), example));
        }
        Ok(v)
    };
    let issuer = text("JEEX_JWT_ISSUER", "jeex", "https://auth.example.com")?;
    let audience = text("JEEX_JWT_AUDIENCE", "jeex-api", "jeex-api")?;
    let private_key = get("JEEX_JWT_PRIVATE_KEY").map(PathBuf::from);
    let public_keys: Vec<PathBuf> = get("JEEX_JWT_PUBLIC_KEYS")
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect())
        .unwrap_or_default();
    let jwks_url = get("JEEX_JWT_JWKS_URL")
        .map(|u| check_url("JEEX_JWT_JWKS_URL", &u, &["http", "https"], "https://auth.example.com/.well-known/jwks.json"))
        .transpose()?;
    let leeway = parse_with(get, "JEEX_JWT_LEEWAY", "30s", "30s", |v| match humantime::parse_duration(v) {
        Ok(d) if d <= Duration::from_secs(60) => Ok(d),
        Ok(_) => Err("must be at most 60s".into()),
        Err(_) => Err(format!("{v:?} is not a duration such as 30s")),
    })?;
    let access_ttl = parse_duration(get, "JEEX_ACCESS_TOKEN_TTL", "15m")?;
    let refresh_ttl = parse_duration(get, "JEEX_REFRESH_TOKEN_TTL", "30d")?;
    let cookie_secure = match get("JEEX_COOKIE_SECURE") {
        None => !dev,
        Some(v) => parse_bool("JEEX_COOKIE_SECURE", &v)?,
    };
    let symmetric = algorithm == Algorithm::HS256;
    let configured = private_key.is_some() || !public_keys.is_empty() || jwks_url.is_some();
    let dev_key_dir = if dev && !configured { Some(data_dir.join("jwt")) } else { None };
    // Whether the keys are present is checked where they are loaded (`serve`, `check`,
    // `token issue`): `migrate` and `openapi` need none.
    if symmetric && jwks_url.is_some() {
        return Err(err("JEEX_JWT_JWKS_URL", "cannot be used with HS256: shared secrets are never published".into(), ""));
    }
    if dev_key_dir.is_some() && symmetric {
        return Err(err("JEEX_JWT_PRIVATE_KEY", "HS256 needs a secret file; none is generated".into(), "/etc/jeex/keys/hs-1.secret"));
    }
    Ok(AuthConfig {
        algorithm,
        issuer,
        audience,
        private_key,
        public_keys,
        jwks_url,
        leeway,
        access_ttl,
        refresh_ttl,
        cookie_secure,
        dev_key_dir,
    })
}

fn check_url(name: &'static str, url: &str, schemes: &[&str], example: &'static str) -> Result<String, ConfigError> {
    match url.split_once("://") {
        Some((scheme, rest)) if schemes.contains(&scheme) && !rest.is_empty() => Ok(url.to_owned()),
        // Never echo the URL itself: it may hold a password.
        _ => Err(err(name, format!("is not a URL with scheme {}", schemes.join(", ")), example)),
    }
}

fn parse_cors(get: &impl Fn(&str) -> Option<String>, dev: bool) -> Result<CorsConfig, ConfigError> {
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
    fn trusted_networks_match_by_prefix() {
        let c = cfg(&[("JEEX_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7, ::1"), ("JEEX_RATE_LIMIT_AUTH", "off")]).unwrap();
        let nets = &c.rate_limit.trusted_proxies;
        let trusted = |ip: &str| nets.iter().any(|n| n.contains(ip.parse().unwrap()));
        assert!(trusted("10.200.3.4") && trusted("192.168.1.7") && trusted("::1"));
        assert!(!trusted("11.0.0.1") && !trusted("192.168.1.8") && !trusted("127.0.0.1"));
        assert_eq!(c.rate_limit.auth, None);
    }

    #[test]
    fn a_quota_window_may_be_a_bare_unit() {
        let c =
            cfg(&[("JEEX_RATE_LIMIT_READS", "600/min"), ("JEEX_RATE_LIMIT_WRITES", "5/h"), ("JEEX_RATE_LIMIT_AUTH", "3/ 10s")]).unwrap();
        assert_eq!(c.rate_limit.reads, Some(Quota { limit: 600, window: Duration::from_secs(60) }));
        assert_eq!(c.rate_limit.writes, Some(Quota { limit: 5, window: Duration::from_secs(3600) }));
        assert_eq!(c.rate_limit.auth, Some(Quota { limit: 3, window: Duration::from_secs(10) }));
        assert_eq!(cfg(&[("JEEX_RATE_LIMIT_READS", "600/fortnight")]).unwrap_err().variable, "JEEX_RATE_LIMIT_READS");
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

    #[test]
    fn readme_documents_every_variable_with_its_default() {
        let readme = include_str!("../../README.md");
        for v in VARIABLES {
            let row = format!("| `{}` | {} |", v.name, v.default);
            assert!(readme.contains(&row), "README configuration table lacks or misstates: {row}");
        }
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("99999999999999999999").is_err());
    }
}

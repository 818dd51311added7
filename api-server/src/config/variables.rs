//! The documented variables: every name the server reads, its default and its meaning. The
//! README's configuration table is generated from the same facts.

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
    Variable {
        name: "OTEL_BSP_MAX_QUEUE_SIZE",
        default: "2048",
        meaning: "spans that may wait for export (1–131072; beyond, spans are dropped; the room is reserved at start)",
    },
    Variable {
        name: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        default: "512",
        meaning: "spans sent in one export (at most the queue size; unset, 512 or the queue if smaller)",
    },
    Variable { name: "OTEL_BSP_SCHEDULE_DELAY", default: "5000", meaning: "milliseconds a span may wait for its batch to fill" },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_documents_every_variable_with_its_default() {
        let readme = include_str!("../../../README.md");
        for v in VARIABLES {
            let row = format!("| `{}` | {} |", v.name, v.default);
            assert!(readme.contains(&row), "README configuration table lacks or misstates: {row}");
        }
    }
}

//! The `JeexBackend` custom resource (`jeex.dev/v1alpha1`): what a platform team asks for and
//! what the operator reports back. Defaults and cross-field rules live in the schema (CEL
//! `x-kubernetes-validations`), so the API server rejects a bad manifest before it reaches us.

use std::collections::BTreeMap;

pub use jeex_types::VectorDistance;
use k8s_openapi::{
    api::core::v1::{Affinity, LocalObjectReference, ResourceRequirements, Toleration},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The admission rule for the connection budget: exactly the condition under which
/// `pools::size` finds a pool (a unit test there holds the two together for every budget and
/// replica count in range).
pub const BUDGET_RULE: &str = "self.database.maxConnections - (self.database.maxConnections / 10 > 1 ? self.database.maxConnections / 10 : 1) - 2 >= self.replicas + 1";

/// A JEEX API deployment with its secrets, connection budget, migrations and rollout gate.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "jeex.dev",
    version = "v1alpha1",
    kind = "JeexBackend",
    plural = "jeexbackends",
    shortname = "jb",
    namespaced,
    status = "JeexBackendStatus",
    cel,
    validation = Rule::new("self.metadata.name.size() <= 44 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message(
        "metadata.name must be a DNS-1035 label of at most 44 characters (lower case letters, digits and '-', starting with a letter): the Service takes the name as it is and the migration Job adds -migrate-<10 hex>, and both must stay within 63"
    ),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".spec.image"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new(BUDGET_RULE).message(
    "database.maxConnections is too small for replicas: after a tenth spare (at least 1) and 2 for the migration Job, each replica and the surge pod needs one connection (see status.pools and the README's connection budget)"
))]
#[x_kube(validation = Rule::new("self.auth.algorithm == 'RS256' || has(self.auth.signingKeySecret)").message(
    "auth.algorithm ES256 and EdDSA need auth.signingKeySecret: the operator generates RS256 keys only"
))]
#[serde(rename_all = "camelCase")]
pub struct JeexBackendSpec {
    /// The `jeex-api` image, e.g. `ghcr.io/jeex/jeex-api:1.4.0`. Changing it runs migrations
    /// first, then rolls the pods.
    #[x_kube(validation = Rule::new("self.size() > 0").message("image must not be empty"))]
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`.
    #[serde(default = "defaults::pull_policy")]
    pub image_pull_policy: PullPolicy,
    /// Secrets for pulling the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// API pods (0 stops the API; migrations still run).
    #[serde(default = "defaults::replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// CPU and memory of each API pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Where pods run, and extra metadata on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodSpec>,
    /// PostgreSQL: owner credentials (migrations), app credentials and the connection budget.
    pub database: DatabaseSpec,
    /// Redis (events and rate limits). Without it each replica keeps its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSpec>,
    /// Qdrant (vectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qdrant: Option<QdrantSpec>,
    /// The shape of document embeddings (the API's defaults, 384 and cosine, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectors: Option<VectorsSpec>,
    /// JWT settings; the signing key is generated when no Secret is named.
    #[serde(default)]
    pub auth: AuthSpec,
    /// Browser origins allowed to call the API with credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,
    /// Per-client request quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Trace export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySpec>,
    /// The migration Job.
    #[serde(default)]
    pub migrations: MigrationsSpec,
    /// The rollout gate.
    #[serde(default)]
    pub rollout: RolloutSpec,
    /// What happens to the Secrets the operator generated (`<name>-db-app`, `<name>-jwt`)
    /// when the resource is deleted: `Retain` (default) keeps them, so deleting and
    /// re-creating the resource (an Argo CD replace, a move) keeps the same database password
    /// and signing key and nobody is logged out; `Delete` removes them with the resource.
    #[serde(default = "defaults::retention")]
    pub secret_retention: SecretRetention,
}

/// What happens to generated Secrets when the resource goes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SecretRetention {
    /// Keep them (they carry no owner reference).
    Retain,
    /// Delete them with the resource (owned by it).
    Delete,
}

/// Image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node lacks the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Pod scheduling and metadata.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Node labels the pods require.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Extra pod labels (the operator's own selector labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A key of a Secret in the resource's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[x_kube(validation = Rule::new("self.size() > 0").message("a Secret name is required"))]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "defaults::url_key")]
    pub key: String,
}

/// PostgreSQL.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// The owner's connection URL (`postgres://owner:…@host/db`), used only by the migration
    /// Job and the readiness probe; never given to the API pods.
    pub owner_secret: SecretKeyRef,
    /// The app's connection URL. When absent the operator generates a password into
    /// `<name>-db-app` and the migration Job creates or updates the `jeex_app` role with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<SecretKeyRef>,
    /// Connections the whole deployment may hold at once (all replicas, the surge pod during
    /// a rollout and the migration Job). Per-replica pools are derived from it.
    #[schemars(range(min = 3, max = 100000))]
    pub max_connections: i32,
    /// Seconds a request waits for a pooled connection.
    #[serde(default = "defaults::acquire_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub acquire_timeout_seconds: i32,
    /// Seconds before a pooled connection is replaced.
    #[serde(default = "defaults::max_lifetime")]
    #[schemars(range(min = 60, max = 86400))]
    pub max_lifetime_seconds: i32,
    /// Seconds an idle pooled connection is kept.
    #[serde(default = "defaults::idle_timeout")]
    #[schemars(range(min = 10, max = 86400))]
    pub idle_timeout_seconds: i32,
}

/// Redis.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// The connection URL.
    pub url_secret: SecretKeyRef,
    /// Connections per replica.
    #[serde(default = "defaults::redis_connections")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_connections: i32,
}

/// Qdrant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct QdrantSpec {
    /// `http://` or `https://` URL of the Qdrant server.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("qdrant.url must be an http:// or https:// URL"))]
    pub url: String,
    /// API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret: Option<SecretKeyRef>,
    /// Collection name.
    #[serde(default = "defaults::collection")]
    pub collection: String,
}

/// The shape of document embeddings. Documents with embeddings of another length are
/// refused, and an existing Qdrant collection of another shape stops the pods at start-up
/// (their log says what to change): change it together with a reindex.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VectorsSpec {
    /// Numbers in each embedding.
    #[serde(default = "defaults::dimension")]
    #[schemars(range(min = 1, max = 65536))]
    pub dimension: i32,
    /// How embeddings are compared.
    #[serde(default = "defaults::distance")]
    pub distance: VectorDistance,
}

/// JWT signing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Signing algorithm of the operator-generated or supplied key.
    #[serde(default = "defaults::algorithm")]
    pub algorithm: JwtAlgorithm,
    /// `iss` of issued tokens.
    #[serde(default = "defaults::issuer")]
    pub issuer: String,
    /// `aud` of issued tokens.
    #[serde(default = "defaults::audience")]
    pub audience: String,
    /// A Secret with the signing key as `<kid>.key.pem` and public keys as `<kid>.pub.pem`
    /// (the `jeex.dev/current-kid` annotation names the signing key when there are several).
    /// When absent the operator generates `<name>-jwt` and rotates it when the resource's
    /// `jeex.dev/rotate-signing-key` annotation changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_secret: Option<String>,
    /// Hours a rotated-out public key stays accepted.
    #[serde(default = "defaults::rotation_grace")]
    #[schemars(range(min = 1, max = 720))]
    pub rotation_grace_hours: i32,
}

impl Default for AuthSpec {
    fn default() -> Self {
        Self {
            algorithm: defaults::algorithm(),
            issuer: defaults::issuer(),
            audience: defaults::audience(),
            signing_key_secret: None,
            rotation_grace_hours: defaults::rotation_grace(),
        }
    }
}

/// JWT algorithms the operator can generate keys for (RS256) or pass through.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum JwtAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256 (supply the key).
    ES256,
    /// Ed25519 (supply the key).
    EdDSA,
}

/// CORS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorsSpec {
    /// Exact origins, e.g. `https://app.example.com`. `*` is refused in production.
    #[x_kube(validation = Rule::new("self.all(o, o != '*')").message("cors.origins must list exact origins; '*' is refused"))]
    pub origins: Vec<String>,
}

/// A quota as the CRD accepts it: `off`, or `<requests>/<window>` with 1 to 1,000,000 requests
/// and a window of `<n>` (optional, 1 when absent) and a unit `s`, `m`, `min` or `h`, from 1 s
/// to 24 h. The API's parser (`JEEX_RATE_LIMIT_*`) accepts every such value with the same
/// meaning (a test holds the two together); it also takes spellings the CRD does not
/// (`1h30m`, `86400000ms`), which a manifest writes in this canonical form instead.
pub const RATE_RULE: &str = "self == 'off' || (self.matches('^[1-9][0-9]{0,6}/([1-9][0-9]{0,5})?(s|m|min|h)$') && int(self.split('/')[0]) <= 1000000 && (self.endsWith('min') ? (self.split('/')[1].size() == 3 ? 1 : int(self.split('/')[1].substring(0, self.split('/')[1].size() - 3))) * 60 : self.endsWith('h') ? (self.split('/')[1].size() == 1 ? 1 : int(self.split('/')[1].substring(0, self.split('/')[1].size() - 1))) * 3600 : self.endsWith('m') ? (self.split('/')[1].size() == 1 ? 1 : int(self.split('/')[1].substring(0, self.split('/')[1].size() - 1))) * 60 : (self.split('/')[1].size() == 1 ? 1 : int(self.split('/')[1].substring(0, self.split('/')[1].size() - 1)))) <= 86400)";
/// Whether the CRD's rule admits `value` as a quota (evaluated by the same CEL rule the API
/// server runs; tests hold it against the API's own parser).
pub fn rate_admitted(value: &str) -> bool {
    let schema = serde_json::json!({ "type": "string", "x-kubernetes-validations": [{ "rule": RATE_RULE }] });
    kube::core::cel::Validator::new().validate(&schema, &serde_json::Value::String(value.to_owned()), None).is_ok()
}

/// The CRD's message for a quota it refuses.
pub const RATE_MESSAGE: &str = "rateLimit values are <requests>/<window> with 1-1000000 requests and a window from 1s to 24h in s, m, min or h (120/60s, 600/min, 5/h), or off";

/// Quotas, as `<n>/<s|m|min|h>` or `off`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Reads per client, as `<requests>/<window>` (`600/min`, `100/10s`) or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(RATE_RULE).message(RATE_MESSAGE))]
    pub reads: Option<String>,
    /// Writes per client, as `<requests>/<window>` or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(RATE_RULE).message(RATE_MESSAGE))]
    pub writes: Option<String>,
    /// Sign-in attempts per client, as `<requests>/<window>` or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(RATE_RULE).message(RATE_MESSAGE))]
    pub auth: Option<String>,
    /// Addresses or CIDR ranges of the proxies in front of the pods (the ingress controller,
    /// the load balancer), e.g. `10.0.0.0/8`. Only from these is `X-Forwarded-For` believed;
    /// empty, every request counts against the proxy's address, so all clients behind an
    /// ingress share one quota. Never list a range clients can send from: they could then
    /// pick the address they are counted as.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new(PROXY_RULE).message(PROXY_MESSAGE))]
    #[schemars(length(max = 64))]
    pub trusted_proxies: Vec<String>,
}

/// The CEL rule for `trustedProxies`: each an IPv4 or IPv6 address, with an optional prefix
/// length within its family's bits (the API server's parser accepts these; held to it by a
/// test).
pub const PROXY_RULE: &str = concat!(
    "self.all(p, p.matches('^",
    "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])([.](25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}",
    "(/(3[0-2]|[12]?[0-9]))?$') || p.matches('^(",
    "([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|",
    "([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}|",
    "([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}|([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}|",
    "[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}|:((:[0-9a-fA-F]{1,4}){1,7}|:))",
    "(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?$'))"
);

/// The CRD's message for a proxy entry it refuses.
pub const PROXY_MESSAGE: &str =
    "rateLimit.trustedProxies entries are IPv4 or IPv6 addresses with an optional prefix length (10.0.0.0/8, 192.168.1.7, fd00::/8)";

/// Does the CRD admit `proxies` as `rateLimit.trustedProxies` (the rule as the API server
/// evaluates it)?
pub fn proxies_admitted(proxies: &[&str]) -> bool {
    let schema =
        serde_json::json!({ "type": "array", "items": { "type": "string" }, "x-kubernetes-validations": [{ "rule": PROXY_RULE }] });
    kube::core::cel::Validator::new().validate(&schema, &serde_json::json!(proxies), None).is_ok()
}

/// Telemetry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelemetrySpec {
    /// OTLP endpoint, e.g. `http://otel-collector:4317`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Fraction of traces sampled, as a decimal string between 0 and 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("double(self) >= 0.0 && double(self) <= 1.0").message("telemetry.sampling must be between 0 and 1"))]
    pub sampling: Option<String>,
    /// Spans that may wait for export in each API pod (the API's default, 2048, when absent);
    /// beyond, spans are dropped. At full sampling on a busy API the default drops spans; the
    /// room is reserved at start, about 0.36 KiB a span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = jeex_types::MAX_SPAN_QUEUE))]
    pub span_queue: Option<i32>,
}

/// The migration Job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationsSpec {
    /// Run migrations before rolling out a new image.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Seconds the Job may run.
    #[serde(default = "defaults::migration_timeout")]
    #[schemars(range(min = 30, max = 86400))]
    pub timeout_seconds: i64,
    /// Retries of a failed migration pod.
    #[serde(default = "defaults::backoff_limit")]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: i32,
}

impl Default for MigrationsSpec {
    fn default() -> Self {
        Self { enabled: true, timeout_seconds: defaults::migration_timeout(), backoff_limit: defaults::backoff_limit() }
    }
}

/// The rollout gate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Hold everything as it is (no migration, no rollout).
    #[serde(default)]
    pub paused: bool,
    /// Seconds each dependency probe may take.
    #[serde(default = "defaults::dependency_timeout")]
    #[schemars(range(min = 1, max = 300))]
    pub dependency_timeout_seconds: i32,
    /// Seconds a rollout may go without progress before it is reported failed
    /// (`Stalled=True`, reason `ProgressDeadlineExceeded`): the Deployment's
    /// `progressDeadlineSeconds`.
    #[serde(default = "defaults::progress_deadline")]
    #[schemars(range(min = 30, max = 86400))]
    pub progress_deadline_seconds: i32,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        Self {
            paused: false,
            dependency_timeout_seconds: defaults::dependency_timeout(),
            progress_deadline_seconds: defaults::progress_deadline(),
        }
    }
}

/// What the operator observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JeexBackendStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Pending`, `WaitingForDependencies`, `Migrating`, `RollingOut`, `Ready` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `Ready`, `DependenciesReady`, `SecretsReady`, `MigrationsSucceeded`, `Reconciling`,
    /// `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Ready API pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// The image the Deployment runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_image: Option<String>,
    /// The image whose migrations last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrated_image: Option<String>,
    /// Images whose migrations succeeded, newest last (at most 10): rolling back to one of
    /// them runs no migration (its `migrate` would refuse the newer schema).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrated_images: Vec<String>,
    /// Computed connection pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pools: Option<PoolStatus>,
    /// The migration Job that failed, until a change of the resource (or the
    /// `jeex.dev/retry-migration` annotation) asks for another attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_migration: Option<FailedMigration>,
}

/// A failed migration the operator will not retry on its own.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedMigration {
    /// The Job's name (kept for its log until a retry).
    pub job: String,
    /// The resource generation it ran for.
    pub generation: i64,
    /// The `jeex.dev/retry-migration` annotation's value at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
}

/// Connection pool sizes derived from the budget.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// Steady connections per replica (`JEEX_DB_POOL_SIZE`).
    pub per_replica: i32,
    /// Extra connections a replica may open under load (`JEEX_DB_POOL_MAX_OVERFLOW`).
    pub overflow: i32,
    /// Connections the migration Job may use.
    pub migration: i32,
    /// The most the whole deployment can hold at once, always below the budget.
    pub worst_case_total: i32,
}

mod defaults {
    use super::{JwtAlgorithm, PullPolicy, SecretRetention, VectorDistance};

    pub fn retention() -> SecretRetention {
        SecretRetention::Retain
    }
    pub fn progress_deadline() -> i32 {
        600
    }

    pub fn pull_policy() -> PullPolicy {
        PullPolicy::IfNotPresent
    }
    pub fn replicas() -> i32 {
        2
    }
    pub fn url_key() -> String {
        "url".into()
    }
    pub fn acquire_timeout() -> i32 {
        5
    }
    pub fn max_lifetime() -> i32 {
        1800
    }
    pub fn idle_timeout() -> i32 {
        600
    }
    pub fn redis_connections() -> i32 {
        50
    }
    pub fn dimension() -> i32 {
        384
    }
    pub fn distance() -> VectorDistance {
        VectorDistance::Cosine
    }
    pub fn collection() -> String {
        "jeex_documents".into()
    }
    pub fn algorithm() -> JwtAlgorithm {
        JwtAlgorithm::RS256
    }
    pub fn issuer() -> String {
        "jeex".into()
    }
    pub fn audience() -> String {
        "jeex-api".into()
    }
    pub fn rotation_grace() -> i32 {
        24
    }
    pub fn yes() -> bool {
        true
    }
    pub fn migration_timeout() -> i64 {
        600
    }
    pub fn backoff_limit() -> i32 {
        1
    }
    pub fn dependency_timeout() -> i32 {
        5
    }
}

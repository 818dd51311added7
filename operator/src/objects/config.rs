//! The API pods' configuration: non-secret settings (as `JEEX_*` variables the server validates
//! at start-up, written into the pod template), secrets as `secretKeyRef` variables, and a
//! checksum of both so any change rolls the pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};

use super::{JWT_DIR, hash};
use crate::crd::{JeexBackend, PoolStatus, SecretKeyRef};

/// The JWT keys the pods use: which Secret, which key signs, which are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeys {
    /// The Secret holding `<kid>.key.pem` and `<kid>.pub.pem` files.
    pub secret: String,
    /// The signing key's ID.
    pub current: String,
    /// IDs of every accepted public key, the current one included (previous keys stay during
    /// their grace period).
    pub accepted: Vec<String>,
}

/// What the pods' configuration depends on besides the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// Pool sizes from the connection budget.
    pub pools: PoolStatus,
    /// JWT keys.
    pub keys: SigningKeys,
    /// Where the app's database URL is (supplied or generated).
    pub app_database: SecretKeyRef,
    /// Fingerprints of the Secrets the pods read (name → content hash), so a changed secret
    /// rolls the pods.
    pub secret_fingerprints: BTreeMap<String, String>,
}

/// Non-secret settings, as environment variables.
pub fn settings(jb: &JeexBackend, inputs: &Inputs) -> BTreeMap<String, String> {
    let spec = &jb.spec;
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("JEEX_ENV", "production".into());
    set("JEEX_HTTP_ADDR", format!("0.0.0.0:{}", super::HTTP_PORT));
    set("JEEX_LOG_FORMAT", "json".into());
    set("JEEX_SHUTDOWN_GRACE", "20s".into());
    set("JEEX_DB_POOL_SIZE", inputs.pools.per_replica.to_string());
    set("JEEX_DB_POOL_MAX_OVERFLOW", inputs.pools.overflow.to_string());
    set("JEEX_DB_ACQUIRE_TIMEOUT", format!("{}s", spec.database.acquire_timeout_seconds));
    set("JEEX_DB_MAX_LIFETIME", format!("{}s", spec.database.max_lifetime_seconds));
    set("JEEX_DB_IDLE_TIMEOUT", format!("{}s", spec.database.idle_timeout_seconds));
    if let Some(redis) = &spec.redis {
        set("JEEX_REDIS_MAX_CONNECTIONS", redis.max_connections.to_string());
    }
    if let Some(qdrant) = &spec.qdrant {
        set("QDRANT_URL", qdrant.url.clone());
        set("JEEX_QDRANT_COLLECTION", qdrant.collection.clone());
    }
    if let Some(vectors) = &spec.vectors {
        set("JEEX_VECTOR_DIM", vectors.dimension.to_string());
        set("JEEX_VECTOR_DISTANCE", vectors.distance.as_str().into());
    }
    let auth = &spec.auth;
    set("JEEX_JWT_ALGORITHM", format!("{:?}", auth.algorithm));
    set("JEEX_JWT_ISSUER", auth.issuer.clone());
    set("JEEX_JWT_AUDIENCE", auth.audience.clone());
    set("JEEX_JWT_PRIVATE_KEY", format!("{JWT_DIR}/{}.key.pem", inputs.keys.current));
    let public: Vec<String> = inputs.keys.accepted.iter().map(|kid| format!("{JWT_DIR}/{kid}.pub.pem")).collect();
    set("JEEX_JWT_PUBLIC_KEYS", public.join(","));
    if let Some(cors) = &spec.cors {
        set("JEEX_CORS_ORIGINS", cors.origins.join(","));
    }
    if let Some(limits) = &spec.rate_limit {
        for (var, value) in
            [("JEEX_RATE_LIMIT_READS", &limits.reads), ("JEEX_RATE_LIMIT_WRITES", &limits.writes), ("JEEX_RATE_LIMIT_AUTH", &limits.auth)]
        {
            if let Some(v) = value {
                set(var, v.clone());
            }
        }
        if !limits.trusted_proxies.is_empty() {
            set("JEEX_TRUSTED_PROXIES", limits.trusted_proxies.join(","));
        }
    }
    set("OTEL_SERVICE_NAME", "jeex-api".into());
    if let Some(telemetry) = &spec.telemetry {
        if let Some(endpoint) = &telemetry.otlp_endpoint {
            set("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone());
        }
        if let Some(sampling) = &telemetry.sampling {
            set("OTEL_TRACES_SAMPLER_ARG", sampling.clone());
        }
        if let Some(queue) = telemetry.span_queue {
            set("OTEL_BSP_MAX_QUEUE_SIZE", queue.to_string());
        }
    }
    env
}

/// An environment variable read from a Secret key (never inlined).
pub fn from_secret(var: &str, secret: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: var.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.name.clone(), key: secret.key.clone(), optional: Some(false) }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// Secret settings of the API pods (never the owner's credentials).
pub fn secret_env(jb: &JeexBackend, inputs: &Inputs) -> Vec<EnvVar> {
    let mut env = vec![from_secret("DATABASE_URL", &inputs.app_database)];
    if let Some(redis) = &jb.spec.redis {
        env.push(from_secret("REDIS_URL", &redis.url_secret));
    }
    if let Some(key) = jb.spec.qdrant.as_ref().and_then(|q| q.api_key_secret.as_ref()) {
        env.push(from_secret("QDRANT_API_KEY", key));
    }
    env
}

/// A digest of everything the pods read at start-up; it changes exactly when they must restart.
pub fn checksum(jb: &JeexBackend, inputs: &Inputs) -> String {
    let mut text = String::new();
    for (k, v) in settings(jb, inputs) {
        text.push_str(&format!("{k}={v}\n"));
    }
    for (name, fingerprint) in &inputs.secret_fingerprints {
        text.push_str(&format!("secret {name}={fingerprint}\n"));
    }
    hash(&text)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::objects::fixtures;

    pub fn inputs() -> Inputs {
        Inputs {
            pools: crate::pools::size(100, 2).unwrap(),
            keys: SigningKeys { secret: "jeex-jwt".into(), current: "k2".into(), accepted: vec!["k2".into(), "k1".into()] },
            app_database: SecretKeyRef { name: "jeex-db-app".into(), key: "url".into() },
            secret_fingerprints: BTreeMap::from([("jeex-db-app".into(), "aa".into()), ("jeex-jwt".into(), "bb".into())]),
        }
    }

    #[test]
    fn settings_carry_the_computed_pools_and_keys() {
        let jb = fixtures::minimal();
        let env = settings(&jb, &inputs());
        let pools = crate::pools::size(100, 2).unwrap();
        assert_eq!(env["JEEX_DB_POOL_SIZE"], pools.per_replica.to_string());
        assert_eq!(env["JEEX_DB_POOL_MAX_OVERFLOW"], pools.overflow.to_string());
        assert_eq!(env["JEEX_ENV"], "production");
        assert_eq!(env["JEEX_JWT_PRIVATE_KEY"], "/var/run/jeex/jwt/k2.key.pem");
        assert_eq!(env["JEEX_JWT_PUBLIC_KEYS"], "/var/run/jeex/jwt/k2.pub.pem,/var/run/jeex/jwt/k1.pub.pem");
        assert!(!env.contains_key("REDIS_URL") && !env.contains_key("DATABASE_URL"), "secrets stay out of the ConfigMap");
        assert!(!env.contains_key("QDRANT_URL"));
    }

    #[test]
    fn the_embedding_shape_reaches_the_pods_only_when_set() {
        let env = settings(&fixtures::minimal(), &inputs());
        assert!(!env.contains_key("JEEX_VECTOR_DIM") && !env.contains_key("JEEX_VECTOR_DISTANCE"), "the API's defaults apply");
        let jb = fixtures::backend(
            "image: i\ndatabase:\n  ownerSecret: { name: owner }\n  maxConnections: 100\nvectors:\n  dimension: 1536\n  distance: dot",
        );
        let env = settings(&jb, &inputs());
        assert_eq!((env["JEEX_VECTOR_DIM"].as_str(), env["JEEX_VECTOR_DISTANCE"].as_str()), ("1536", "dot"));
        let jb = fixtures::backend("image: i\ndatabase:\n  ownerSecret: { name: owner }\n  maxConnections: 100\nvectors: {}");
        let env = settings(&jb, &inputs());
        assert_eq!((env["JEEX_VECTOR_DIM"].as_str(), env["JEEX_VECTOR_DISTANCE"].as_str()), ("384", "cosine"));
    }

    #[test]
    fn telemetry_reaches_the_pods_only_when_set() {
        let env = settings(&fixtures::minimal(), &inputs());
        assert!(
            !env.contains_key("OTEL_EXPORTER_OTLP_ENDPOINT") && !env.contains_key("OTEL_BSP_MAX_QUEUE_SIZE"),
            "the API's defaults apply"
        );
        let jb = fixtures::backend(
            "image: i\ndatabase:\n  ownerSecret: { name: owner }\n  maxConnections: 100\ntelemetry:\n  otlpEndpoint: http://otel:4317\n  sampling: \"1.0\"\n  spanQueue: 32768",
        );
        let env = settings(&jb, &inputs());
        assert_eq!(
            (env["OTEL_EXPORTER_OTLP_ENDPOINT"].as_str(), env["OTEL_TRACES_SAMPLER_ARG"].as_str(), env["OTEL_BSP_MAX_QUEUE_SIZE"].as_str()),
            ("http://otel:4317", "1.0", "32768")
        );
    }

    #[test]
    fn secrets_are_references_and_the_owner_url_is_never_one_of_them() {
        let jb = fixtures::backend(
            "image: i\ndatabase:\n  ownerSecret: { name: owner }\n  maxConnections: 100\nredis:\n  urlSecret: { name: redis }\nqdrant:\n  url: http://q:6334\n  apiKeySecret: { name: qk, key: k }",
        );
        let env = secret_env(&jb, &inputs());
        let names: Vec<(&str, &str)> =
            env.iter().map(|e| (e.name.as_str(), e.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name.as_str())).collect();
        assert_eq!(names, [("DATABASE_URL", "jeex-db-app"), ("REDIS_URL", "redis"), ("QDRANT_API_KEY", "qk")]);
        assert!(env.iter().all(|e| e.value.is_none()), "no secret value is inlined");
    }

    #[test]
    fn the_checksum_changes_with_settings_and_secrets_only() {
        let jb = fixtures::minimal();
        let base = checksum(&jb, &inputs());
        assert_eq!(base, checksum(&jb, &inputs()), "stable");
        let mut rotated = inputs();
        rotated.secret_fingerprints.insert("jeex-jwt".into(), "cc".into());
        assert_ne!(base, checksum(&jb, &rotated), "a changed secret rolls the pods");
        let mut resized = inputs();
        resized.pools.per_replica += 1;
        assert_ne!(base, checksum(&jb, &resized), "a new pool size rolls the pods");
        let mut rescaled = fixtures::minimal();
        rescaled.spec.replicas = 2; // the default: nothing the pods read changed
        assert_eq!(base, checksum(&rescaled, &inputs()));
    }
}

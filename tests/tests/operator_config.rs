//! The operator and the API agree: every setting the operator puts into the API pods'
//! ConfigMap, plus the Secret-backed variables, is accepted by the API's own configuration
//! parser in production mode, and means what the `JeexBackend` said.

use std::collections::{BTreeMap, HashMap};

use jeex_api::config::{Config, VectorDistance, VectorEngine};
use jeex_operator::{
    crd::{JeexBackend, SecretKeyRef},
    objects::config::{Inputs, SigningKeys, secret_env, settings},
};

fn example(name: &str) -> JeexBackend {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/examples").join(name);
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a pod of `jb` would see in its environment: the ConfigMap, and a plausible value for
/// each Secret-backed variable.
fn pod_environment(jb: &JeexBackend) -> HashMap<String, String> {
    let inputs = Inputs {
        pools: jeex_operator::pools::size(jb.spec.database.max_connections, jb.spec.replicas).unwrap(),
        keys: SigningKeys { secret: "jeex-jwt".into(), current: "k1".into(), accepted: vec!["k1".into()] },
        app_database: SecretKeyRef { name: "jeex-db-app".into(), key: "url".into() },
        secret_fingerprints: BTreeMap::new(),
    };
    let mut env: HashMap<String, String> = settings(jb, &inputs).into_iter().collect();
    for var in secret_env(jb, &inputs) {
        let value = match var.name.as_str() {
            "DATABASE_URL" => "postgres://jeex_app:secret@postgres.jeex.svc:5432/jeex",
            "REDIS_URL" => "redis://redis.jeex.svc:6379/0",
            "QDRANT_API_KEY" => "qdrant-key",
            other => panic!("a Secret-backed variable this test does not know: {other}"),
        };
        env.insert(var.name, value.into());
    }
    env
}

#[test]
fn every_example_configures_pods_the_api_accepts_in_production() {
    for name in ["minimal.yaml", "full.yaml"] {
        let env = pod_environment(&example(name));
        let config = Config::from_map(&env).unwrap_or_else(|e| panic!("{name}: the API refuses the operator's settings: {e}"));
        assert_eq!(config.env.as_str(), "production", "{name}");
    }
}

#[test]
fn the_full_example_means_what_it_says() {
    let config = Config::from_map(&pod_environment(&example("full.yaml"))).unwrap();
    assert_eq!((config.vectors.dim, config.vectors.distance), (768, VectorDistance::Dot));
    assert_eq!(config.vectors.collection, "jeex_documents");
    assert!(matches!(config.vectors.engine, VectorEngine::Server(ref q) if q.url.starts_with("http://qdrant.jeex.svc")));
    // Without a `vectors` section the API's defaults apply.
    let config = Config::from_map(&pod_environment(&example("minimal.yaml"))).unwrap();
    assert_eq!((config.vectors.dim, config.vectors.distance), (384, VectorDistance::Cosine));
}

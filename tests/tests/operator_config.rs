//! The operator and the API agree: every setting the operator puts into the API pods'
//! template, plus the Secret-backed variables, is accepted by the API's own configuration
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

/// What a pod of `jb` would see in its environment: the settings, and a plausible value for
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

/// The CRD's rate-limit rule (CEL, as the API server evaluates it) against the API's parser:
/// every value the CRD admits, the API accepts; every canonical value the API accepts, the
/// CRD admits; and the edges either side of each bound.
#[test]
fn the_crd_admits_exactly_the_rate_limits_the_api_parses_in_canonical_form() {
    let api_accepts = |value: &str| {
        let mut env = pod_environment(&example("minimal.yaml"));
        env.insert("JEEX_RATE_LIMIT_READS".into(), value.into());
        Config::from_map(&env).is_ok()
    };
    let mut candidates: Vec<String> =
        vec!["off".into(), "on".into(), "".into(), "120 per minute".into(), "10/1d".into(), "10/90m30s".into()];
    for count in ["0", "1", "7", "999999", "1000000", "1000001", "01", "-1"] {
        for window in [
            "s", "1s", "0s", "59s", "60s", "86400s", "86401s", "m", "1m", "1440m", "1441m", "min", "1min", "1440min", "1441min", "h", "1h",
            "24h", "25h", "0h", "ms", "1000ms",
        ] {
            candidates.push(format!("{count}/{window}"));
        }
    }
    let mut canonical_accepted = 0;
    for value in &candidates {
        let admitted = jeex_operator::crd::rate_admitted(value);
        let accepted = api_accepts(value);
        if admitted {
            assert!(accepted, "the CRD admits {value:?} but the API refuses it");
        }
        // Canonical: <count without leading zero>/<optional count><s|m|min|h>.
        let canonical = value == "off"
            || value.split_once('/').is_some_and(|(c, w)| {
                !c.starts_with('0')
                    && !c.starts_with('-')
                    && ["s", "m", "min", "h"].iter().any(|u| {
                        w.strip_suffix(u).is_some_and(|n| n.is_empty() || (!n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())))
                            && !w.ends_with("ms")
                    })
            });
        if accepted && canonical {
            assert!(admitted, "the API accepts the canonical {value:?} but the CRD refuses it");
            canonical_accepted += 1;
        }
    }
    assert!(canonical_accepted > 40, "the matrix exercised the accepted side: {canonical_accepted}");
    assert!(!jeex_operator::crd::rate_admitted("1/25h") && !api_accepts("1/25h"), "both refuse a window over 24 h");
}

/// `rateLimit.trustedProxies`: every entry the CRD admits, the API parses, and the usual
/// forms (addresses and ranges of both families) are admitted; what the API refuses, the CRD
/// refuses first (a pod must never crash-loop on a value the API server let in).
#[test]
fn the_crd_admits_only_trusted_proxies_the_api_parses() {
    let api_accepts = |value: &str| {
        let mut env = pod_environment(&example("minimal.yaml"));
        env.insert("JEEX_TRUSTED_PROXIES".into(), value.into());
        Config::from_map(&env).is_ok()
    };
    let good =
        ["10.0.0.0/8", "192.168.1.7", "0.0.0.0/0", "255.255.255.255/32", "fd00::/8", "::1", "2001:db8::1/128", "::/0", "fe80::1:2:3:4"];
    let bad = [
        "256.0.0.1",
        "10.0.0.0/33",
        "10.0.0",
        "10.0.0.0/",
        "fd00::/129",
        "fd00:::1",
        "2001:db8::g",
        "example.com",
        "10.0.0.0/8 ",
        "",
        "1.2.3.4/-1",
        "01.2.3.4",
    ];
    for value in good {
        assert!(jeex_operator::crd::proxies_admitted(&[value]), "the CRD refuses {value:?}");
        assert!(api_accepts(value), "the API refuses {value:?}");
    }
    for value in bad {
        assert!(!jeex_operator::crd::proxies_admitted(&[value]), "the CRD admits {value:?}");
    }
    for value in good.iter().chain(&bad) {
        if jeex_operator::crd::proxies_admitted(&[value]) {
            assert!(api_accepts(value), "the CRD admits {value:?} but the API refuses it");
        }
    }
    assert!(jeex_operator::crd::proxies_admitted(&["10.0.0.0/8", "fd00::/8"]));
    assert!(!jeex_operator::crd::proxies_admitted(&["10.0.0.0/8", "nope"]));
}

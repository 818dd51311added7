//! Acceptance 3: every forged or broken access token is rejected with the same 401 and a
//! `WWW-Authenticate` challenge; tokens from either of two configured keys are accepted; a
//! JWKS URL is fetched again on an unknown `kid` at most once a minute.

mod support;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use poem::{EndpointExt, Route, handler, web::Data};
use rsa::{pkcs8::DecodePublicKey, traits::PublicKeyParts};
use serde_json::{Value, json};
use support::db::TestDatabase;

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims() -> Value {
    json!({
        "iss": "jeex", "aud": "jeex-api", "sub": uuid::Uuid::now_v7().to_string(),
        "exp": now() + 600, "nbf": now(), "iat": now(), "jti": uuid::Uuid::now_v7().to_string(),
    })
}

fn with(mut c: Value, key: &str, value: Value) -> Value {
    c[key] = value;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(support::key(name)).unwrap()
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rs(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&read(&format!("{name}.key.pem"))).unwrap()
}

fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
    format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

async fn status_of(app: &support::TestApp, token: &str) -> (u16, Option<String>, Value) {
    let resp = support::client().get(app.url("/api/v1/projects")).bearer_auth(token).send().await.unwrap();
    let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = support::session::split(resp).await;
    (status, challenge, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_broken_tokens_are_rejected_alike() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url)])).await;
    let k1 = rs("k1");
    let attacks: Vec<(&str, String)> = vec![
        ("alg none", unsigned(&claims())),
        ("HS256 keyed with the RS public key", sign(Algorithm::HS256, &EncodingKey::from_secret(&read("k1.pub.pem")), "k1", &claims())),
        ("expired", sign(Algorithm::RS256, &k1, "k1", &with(claims(), "exp", json!(now() - 3600)))),
        ("not yet valid", sign(Algorithm::RS256, &k1, "k1", &with(claims(), "nbf", json!(now() + 3600)))),
        ("issued in the future", sign(Algorithm::RS256, &k1, "k1", &with(claims(), "iat", json!(now() + 3600)))),
        ("wrong iss", sign(Algorithm::RS256, &k1, "k1", &with(claims(), "iss", json!("evil")))),
        ("wrong aud", sign(Algorithm::RS256, &k1, "k1", &with(claims(), "aud", json!("other-api")))),
        ("bad signature", sign(Algorithm::RS256, &rs("k3"), "k1", &claims())),
        ("missing sub", sign(Algorithm::RS256, &k1, "k1", &without(claims(), "sub"))),
        ("missing jti", sign(Algorithm::RS256, &k1, "k1", &without(claims(), "jti"))),
        ("missing exp", sign(Algorithm::RS256, &k1, "k1", &without(claims(), "exp"))),
        ("sub not a user id", sign(Algorithm::RS256, &k1, "k1", &with(claims(), "sub", json!("admin")))),
        ("unknown kid", sign(Algorithm::RS256, &rs("k3"), "k3", &claims())),
        ("no kid", jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims(), &k1).unwrap()),
        ("garbage", "not.a.token".into()),
    ];
    let mut bodies = Vec::new();
    for (name, token) in &attacks {
        let (status, challenge, body) = status_of(&app, token).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"jeex\""), "{name}");
        bodies.push(json!({ "code": body["code"], "detail": body["detail"], "title": body["title"] }));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "failures never say which check failed: {bodies:?}");
    let (status, _, _) = status_of(&app, "").await;
    assert_eq!(status, 401);
    let resp = support::client().get(app.url("/api/v1/projects")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "no credentials at all");

    // Key rotation: either configured key is accepted (for a user that exists).
    let user = support::session::login(&app, "rotation@example.com").await;
    for (name, kid) in [("k1", "k1"), ("k2", "k2")] {
        let token = sign(Algorithm::RS256, &rs(name), kid, &with(claims(), "sub", json!(user.id)));
        let (status, _, body) = status_of(&app, &token).await;
        assert_eq!(status, 200, "token signed by {name}: {body}");
    }
}

#[tokio::test]
async fn es256_eddsa_and_hs256_are_supported_and_never_mixed() {
    for (alg, private, public, other) in [
        ("ES256", "ec.key.pem", "ec.pub.pem", Algorithm::EdDSA),
        ("EdDSA", "ed.key.pem", "ed.pub.pem", Algorithm::ES256),
        ("HS256", "hs.secret", "", Algorithm::RS256),
    ] {
        let cfg = support::config(&[
            ("JEEX_JWT_ALGORITHM", alg),
            ("JEEX_JWT_PRIVATE_KEY", &support::key(private)),
            ("JEEX_JWT_PUBLIC_KEYS", &if public.is_empty() { String::new() } else { support::key(public) }),
        ]);
        let tokens = jeex_api::auth::jwt::AccessTokens::load(&cfg.auth).await.unwrap_or_else(|e| panic!("{alg}: {e}"));
        let user = uuid::Uuid::now_v7();
        let token = tokens.issue(user).unwrap();
        assert_eq!(tokens.verify(&token).await, Ok(user), "{alg}");
        let foreign = match other {
            Algorithm::EdDSA => sign(other, &EncodingKey::from_ed_pem(&read("ed.key.pem")).unwrap(), "ec", &claims()),
            Algorithm::ES256 => sign(other, &EncodingKey::from_ec_pem(&read("ec.key.pem")).unwrap(), "ed", &claims()),
            _ => sign(other, &rs("k1"), "hs", &claims()),
        };
        assert!(tokens.verify(&foreign).await.is_err(), "{alg} must refuse a {other:?} token");
    }
}

#[tokio::test]
async fn a_key_file_of_the_wrong_kind_refuses_start_up_naming_the_variable() {
    let cfg = support::config(&[("JEEX_JWT_ALGORITHM", "ES256")]);
    let err = jeex_api::auth::jwt::AccessTokens::load(&cfg.auth).await.err().expect("RSA keys under ES256 must fail");
    assert_eq!(err.variable, "JEEX_JWT_PRIVATE_KEY");
    let cfg = support::config(&[("JEEX_ENV", "staging"), ("JEEX_JWT_PRIVATE_KEY", "")]);
    let err = jeex_api::auth::jwt::AccessTokens::load(&cfg.auth).await.err().expect("outside development a key is required");
    assert_eq!(err.variable, "JEEX_JWT_PRIVATE_KEY");
    let cfg = support::config(&[("JEEX_JWT_PUBLIC_KEYS", "")]);
    let err = jeex_api::auth::jwt::AccessTokens::load(&cfg.auth).await.err().expect("a public key is required");
    assert_eq!(err.variable, "JEEX_JWT_PUBLIC_KEYS");
    let cfg = support::config(&[("JEEX_JWT_PUBLIC_KEYS", &support::key("k2.pub.pem"))]);
    let err = jeex_api::auth::jwt::AccessTokens::load(&cfg.auth).await.err().expect("signing kid must be verifiable");
    assert_eq!(err.variable, "JEEX_JWT_PUBLIC_KEYS");
}

#[handler]
fn jwks(hits: Data<&Arc<AtomicUsize>>, set: Data<&Arc<Value>>) -> poem::web::Json<Value> {
    hits.fetch_add(1, Ordering::SeqCst);
    poem::web::Json(Value::clone(&set))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_are_fetched_and_unknown_kids_refetch_at_most_once_a_minute() {
    let public = rsa::RsaPublicKey::from_public_key_pem(std::str::from_utf8(&read("k3.pub.pem")).unwrap()).unwrap();
    let set = Arc::new(json!({ "keys": [{
        "kty": "RSA", "kid": "k3", "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    }]}));
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let route = Route::new().at("/jwks.json", poem::get(jwks)).data(hits.clone()).data(set);
    tokio::spawn(poem::Server::new(poem::listener::TcpListener::bind(addr.to_string())).run(route));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let db = TestDatabase::create().await;
    let url = format!("http://{addr}/jwks.json");
    let app = support::start(support::config(&[
        ("DATABASE_URL", &db.app_url),
        ("JEEX_JWT_PUBLIC_KEYS", &support::key("k1.pub.pem")),
        ("JEEX_JWT_JWKS_URL", &url),
    ]))
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched once at start");
    let user = support::session::login(&app, "jwks@example.com").await;
    let token = sign(Algorithm::RS256, &rs("k3"), "k3", &with(claims(), "sub", json!(user.id)));
    let (status, _, body) = status_of(&app, &token).await;
    assert_eq!(status, 200, "a JWKS key verifies: {body}");
    for _ in 0..3 {
        let (status, _, _) = status_of(&app, &sign(Algorithm::RS256, &rs("k2"), "rotated-later", &claims())).await;
        assert_eq!(status, 401);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2, "three unknown kids within a minute cause one refetch");
}

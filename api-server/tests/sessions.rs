//! Acceptance 4 and the rest of the session rules: refresh tokens rotate and a reused one
//! revokes its family; logout revokes; cookies are httpOnly/Lax and cookie-authenticated
//! changes need an allowed Origin; dev-login exists only in development.

mod support;

use serde_json::{Value, json};
use support::{db::TestDatabase, session};

async fn refresh(app: &support::TestApp, token: &str) -> (u16, Value) {
    let resp = support::client().post(app.url("/api/v1/auth/refresh")).json(&json!({ "refresh_token": token })).send().await.unwrap();
    session::split(resp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_work_once_and_reuse_revokes_the_family() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url)])).await;
    let user = session::login(&app, "ann@example.com").await;

    let (status, first) = refresh(&app, &user.refresh).await;
    assert_eq!(status, 200, "{first}");
    let second = first["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, user.refresh, "rotated");
    let access = first["access_token"].as_str().unwrap();
    let me = support::client().get(app.url("/api/v1/auth/me")).bearer_auth(access).send().await.unwrap();
    assert_eq!(me.status(), 200, "the new access token works");

    // The old token again: refused, and the whole family with it.
    let (status, body) = refresh(&app, &user.refresh).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let (status, _) = refresh(&app, &second).await;
    assert_eq!(status, 401, "the newer token of the family stops working too");

    // Stored only as hashes.
    let owner = db.owner_pool().await;
    let plain: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE encode(token_hash, 'escape') = $1")
        .bind(&second)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(plain, 0);

    // Logout revokes the presented family; other logins keep working.
    let other = session::login(&app, "ann@example.com").await;
    let current = session::login(&app, "ann@example.com").await;
    let resp =
        support::client().post(app.url("/api/v1/auth/logout")).json(&json!({ "refresh_token": current.refresh })).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let cleared: Vec<String> = resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(cleared.iter().all(|c| c.contains("Max-Age=0")) && cleared.len() == 2, "{cleared:?}");
    assert_eq!(refresh(&app, &current.refresh).await.0, 401);
    assert_eq!(refresh(&app, &other.refresh).await.0, 200);
    assert_eq!(refresh(&app, "never-issued").await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_sessions_need_an_allowed_origin_for_changes() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url)])).await;
    let client = support::client();
    let resp = client.post(app.url("/api/v1/auth/dev-login")).json(&json!({ "email": "cookie@example.com" })).send().await.unwrap();
    let cookies: Vec<String> = resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert_eq!(cookies.len(), 2);
    for c in &cookies {
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && !c.contains("Secure"), "{c}");
    }
    let access = cookies.iter().find(|c| c.starts_with("jeex_access=")).unwrap();
    let cookie = access.split(';').next().unwrap().to_owned();
    let refresh_cookie = cookies.iter().find(|c| c.starts_with("jeex_refresh=")).unwrap();
    assert!(refresh_cookie.contains("Path=/api/v1/auth"), "the refresh cookie goes only to the auth endpoints");

    let get = client.get(app.url("/api/v1/projects")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(get.status(), 200, "safe requests need no Origin");
    let body = json!({ "name": "Via cookie" });
    for origin in [None, Some("https://evil.example.com")] {
        let mut req = client.post(app.url("/api/v1/projects")).header("cookie", &cookie).json(&body);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let (status, got) = session::split(req.send().await.unwrap()).await;
        assert_eq!(status, 403, "origin {origin:?}: {got}");
    }
    let ok = client.post(app.url("/api/v1/projects")).header("cookie", &cookie).header("origin", "https://app.example.com").json(&body);
    let resp = ok.send().await.unwrap();
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().get("location").unwrap().to_str().unwrap().starts_with("/api/v1/projects/"));

    // Refreshing from the cookie rotates the cookies and keeps the tokens out of the body.
    let refresh_value = refresh_cookie.split(';').next().unwrap().to_owned();
    let resp = client.post(app.url("/api/v1/auth/refresh")).header("cookie", &refresh_value).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let rotated: Vec<String> = resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(rotated.iter().any(|c| c.starts_with("jeex_refresh=") && !c.starts_with(&refresh_value)), "{rotated:?}");
    let (_, body) = session::split(resp).await;
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["token_type"], "Bearer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_login_exists_only_in_development_and_cookies_are_secure_elsewhere() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_ENV", "staging")])).await;
    let resp = support::client().post(app.url("/api/v1/auth/dev-login")).json(&json!({ "email": "x@example.com" })).send().await.unwrap();
    let (status, body) = session::split(resp).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&db.owner_pool().await).await.unwrap();
    assert_eq!(users, 0, "nothing was created");
}

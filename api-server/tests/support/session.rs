//! A signed-in test user talking to a served app over HTTP.

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use super::TestApp;

/// A user with an access token (from the real dev-login).
#[derive(Clone)]
pub struct User {
    /// The user's id.
    pub id: String,
    /// Access token.
    pub token: String,
    /// Refresh token.
    pub refresh: String,
    base: String,
    client: reqwest::Client,
}

/// Signs `email` in through `POST /api/v1/auth/dev-login`.
pub async fn login(app: &TestApp, email: &str) -> User {
    let client = super::client();
    let resp = client.post(app.url("/api/v1/auth/dev-login")).json(&json!({ "email": email })).send().await.unwrap();
    assert_eq!(resp.status(), 200, "dev-login");
    let pair: Value = resp.json().await.unwrap();
    let token = pair["access_token"].as_str().unwrap().to_owned();
    let me: Value = client.get(app.url("/api/v1/auth/me")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    User {
        id: me["id"].as_str().unwrap().to_owned(),
        token,
        refresh: pair["refresh_token"].as_str().unwrap().to_owned(),
        base: app.base.clone(),
        client,
    }
}

impl User {
    /// A request with the user's bearer token.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    /// Sends and returns status and JSON body (`Null` when empty).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.req(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        split(req.send().await.unwrap()).await
    }

    /// Polls `GET path` until `done` holds for the body (an operation reaching a state, say);
    /// fails the test after `limit`.
    pub async fn wait_for(&self, path: &str, limit: std::time::Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let (status, body) = self.call(Method::GET, path, None).await;
            assert_eq!(status, 200, "{body}");
            if done(&body) {
                return body;
            }
            assert!(std::time::Instant::now() < deadline, "{path} did not get there in {limit:?}: {body}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Starts an import of `n` documents in `project` and returns the operation's id.
    pub async fn import(&self, project: &str, n: usize) -> String {
        let docs: Vec<Value> = (0..n).map(|i| json!({ "title": format!("D{i}") })).collect();
        let body = json!({ "kind": "documents.import", "input": { "documents": docs } });
        let (status, op) = self.call(Method::POST, &format!("/api/v1/projects/{project}/operations"), Some(body)).await;
        assert_eq!(status, 202, "{op}");
        op["id"].as_str().unwrap().to_owned()
    }

    /// Creates a project and returns its id.
    pub async fn project(&self, name: &str) -> String {
        let (status, body) = self.call(Method::POST, "/api/v1/projects", Some(json!({ "name": name }))).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Creates a document and returns its id.
    pub async fn document(&self, project: &str, title: &str, content: &str) -> String {
        let path = format!("/api/v1/projects/{project}/documents");
        let (status, body) = self.call(Method::POST, &path, Some(json!({ "title": title, "content": content }))).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }
}

/// Status and JSON body of a response.
pub async fn split(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

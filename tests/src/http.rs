//! A blocking GET for synchronous tests.

/// Status and body of `GET url`, on a throwaway runtime.
pub fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let r = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    })
}

/// Status and body of a request with a bearer token and an optional JSON body.
pub fn call(method: reqwest::Method, url: &str, token: &str, body: Option<serde_json::Value>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut req = reqwest::Client::new().request(method, url).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    })
}

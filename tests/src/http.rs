//! HTTP for tests: blocking calls for synchronous tests, and async helpers.

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

/// Sends `req` and reads its JSON answer (`Null` when the body is not JSON).
pub async fn json(req: reqwest::RequestBuilder) -> serde_json::Value {
    let resp = req.send().await.unwrap_or_else(|e| panic!("request failed: {e}"));
    resp.json().await.unwrap_or(serde_json::Value::Null)
}

/// One HTTP/1.1 request over a connection of its own, the answer read while the body is
/// written: a server that refuses a body (an early 413) answers and closes before reading it
/// all, which a client that writes the whole body first sees as a broken connection.
/// `headers` are extra header lines (`Name: value`). Returns the status, the header block and
/// the body.
pub async fn exchange(addr: &str, method: &str, path: &str, headers: &[String], body: Vec<u8>) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let (mut reader, mut writer) = stream.into_split();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for line in headers {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&body).await;
        writer
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), reader.read_to_end(&mut answer)).await;
    writing.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

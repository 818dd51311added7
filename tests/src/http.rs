//! A blocking GET for synchronous tests.

/// Status and body of `GET url`, on a throwaway runtime.
pub fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let r = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    })
}

//! What the logs carry: the correlation ID on a failed request's error line, and an incoming
//! W3C trace ID. Logs are captured from one process-wide subscriber; each test finds its own
//! lines by an ID only it uses.

mod support;

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

use support::{client, config, start};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install() -> &'static Self {
        static CAPTURED: OnceLock<Captured> = OnceLock::new();
        CAPTURED.get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            tracing_subscriber::fmt().json().with_current_span(true).with_writer(move || writer.clone()).init();
            captured
        })
    }

    fn lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

#[tokio::test]
async fn a_panic_is_logged_with_the_correlation_id() {
    let logs = Captured::install();
    let app = start(config(&[])).await;
    let r = client().get(app.url("/test/panic")).header("X-Correlation-ID", "panic-corr-1").send().await.unwrap();
    assert_eq!(r.status(), 500);
    let lines = logs.lines();
    let failed = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request failed" && l["fields"]["correlation_id"] == "panic-corr-1")
        .unwrap_or_else(|| panic!("no error line in {lines:?}"));
    assert_eq!(failed["level"], "ERROR");
    assert_eq!(failed["fields"]["correlation_id"], "panic-corr-1");
    assert!(failed["fields"]["error"].as_str().unwrap().contains("boom"), "{failed}");
    assert_eq!(failed["span"]["correlation_id"], "panic-corr-1");
}

#[tokio::test]
async fn an_incoming_traceparent_is_continued_in_the_logs() {
    let logs = Captured::install();
    let app = start(config(&[])).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    client().get(app.url("/test/items/7")).header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01")).send().await.unwrap();
    let lines = logs.lines();
    let completed = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request completed" && l["span"]["trace_id"] == trace_id)
        .unwrap_or_else(|| panic!("no access-log line in {lines:?}"));
    assert_eq!(completed["span"]["trace_id"], trace_id, "{completed}");
    assert_eq!(completed["fields"]["route"], "/test/items/{id}");
}

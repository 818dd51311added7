//! Server-Sent Events as a test client reads them.

use serde_json::Value;

/// One parsed SSE message.
#[derive(Debug, Clone)]
pub struct Message {
    /// `id:`, when the message has one.
    pub id: Option<String>,
    /// `event:` (`message` when absent).
    pub event: String,
    /// `data:`, parsed as JSON (`Null` when it is not).
    pub data: Value,
}

/// Takes every complete message (up to a blank line) out of `text`; comments and `retry:`
/// hints, which carry no data, are dropped.
pub fn drain(text: &mut String) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(end) = text.find("\n\n") {
        let block: String = text.drain(..end + 2).collect();
        let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
                id = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("event: ").or_else(|| line.strip_prefix("event:")) {
                event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
                data.push_str(v);
            }
        }
        if !data.is_empty() {
            out.push(Message { id, event, data: serde_json::from_str(&data).unwrap_or(Value::Null) });
        }
    }
    out
}

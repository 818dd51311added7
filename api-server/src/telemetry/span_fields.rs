//! How span fields are stored for the JSON log format: written straight into the span's JSON
//! object as they are recorded. `tracing-subscriber`'s own JSON field formatter collects them
//! into a map of `serde_json` values and serialises that, on every span creation — every
//! request opens a span, most requests log nothing, and that formatting was a twentieth of
//! the server's time per request.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::{
    field::RecordFields,
    fmt::{FormatFields, FormattedFields, format::Writer},
};

/// Span fields as one JSON object (what the JSON event formatter expects to find).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonSpanFields;

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut object = Object { out: &mut writer, empty: true, result: Ok(()) };
        fields.record(&mut object);
        let Object { empty, result, .. } = object;
        result?;
        writer.write_str(if empty { "{}" } else { "}" })
    }

    /// Fields recorded after creation (`trace_id`, on every request whose spans are exported):
    /// spliced into the object as text, without parsing it. A field is recorded once, so no key
    /// repeats.
    fn add_fields(&self, current: &'writer mut FormattedFields<Self>, fields: &tracing::span::Record<'_>) -> fmt::Result {
        let mut added = String::new();
        self.format_fields(Writer::new(&mut added), fields)?;
        if added == "{}" {
            return Ok(());
        }
        if current.fields.is_empty() || current.fields == "{}" {
            current.fields = added;
            return Ok(());
        }
        // Both are objects this formatter wrote: `{…}` and `{…}` become `{…,…}`.
        current.fields.pop();
        current.fields.push(',');
        current.fields.push_str(&added[1..]);
        Ok(())
    }
}

/// Writes `"name":value` pairs, opening the object at the first.
struct Object<'a, 'w> {
    out: &'a mut Writer<'w>,
    empty: bool,
    result: fmt::Result,
}

impl<'w> Object<'_, 'w> {
    /// Whether `field` stays out of the log: the semantic-convention attributes (dotted names:
    /// `http.route`, `otel.name`, …) of exported spans are for the trace; the access-log line
    /// already says the same.
    fn skipped(field: &Field) -> bool {
        field.name().contains('.')
    }

    fn key(&mut self, field: &Field) -> fmt::Result {
        self.out.write_str(if self.empty { "{\"" } else { ",\"" })?;
        self.empty = false;
        Escaped(&mut *self.out).write_str(field.name())?;
        self.out.write_str("\":")
    }

    fn raw(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_ok() && !Self::skipped(field) {
            self.result = self.key(field).and_then(|()| self.out.write_fmt(value));
        }
    }

    /// A string field; `write` writes its value through the escaper.
    fn string(&mut self, field: &Field, write: impl FnOnce(&mut Escaped<'_, Writer<'w>>) -> fmt::Result) {
        if self.result.is_ok() && !Self::skipped(field) {
            self.result = self.key(field).and_then(|()| {
                self.out.write_char('"')?;
                write(&mut Escaped(&mut *self.out))?;
                self.out.write_char('"')
            });
        }
    }
}

impl Visit for Object<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.string(field, |out| write!(out, "{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        // Straight to the escaper, without the formatting machinery: every request span
        // records its correlation ID this way.
        self.string(field, |out| out.write_str(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity.
        if value.is_finite() { self.raw(field, format_args!("{value}")) } else { self.string(field, |out| write!(out, "{value}")) }
    }
}

/// Escapes what passes through as the inside of a JSON string.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?
            } else {
                self.0.write_str(escape)?
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::{layer::SubscriberExt, registry::LookupSpan};

    use super::*;

    /// The fields of a span created (and then recorded into) under a subscriber using
    /// [`JsonSpanFields`], parsed back as JSON.
    fn fields_of(make: impl FnOnce() -> tracing::Span) -> serde_json::Value {
        let subscriber = tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().json().fmt_fields(JsonSpanFields));
        tracing::subscriber::with_default(subscriber, || {
            let span = make();
            let id = span.id().expect("span enabled");
            tracing::dispatcher::get_default(|d| {
                let registry = d.downcast_ref::<tracing_subscriber::Registry>().expect("registry");
                let data = registry.span(&id).expect("span");
                let ext = data.extensions();
                let fields = ext.get::<FormattedFields<JsonSpanFields>>().expect("formatted");
                serde_json::from_str(fields).expect("valid JSON")
            })
        })
    }

    #[test]
    fn writes_a_json_object_and_escapes_strings() {
        let odd = "quote \" backslash \\ newline \n bell \u{7} é";
        let v = fields_of(|| tracing::error_span!("request", correlation_id = %odd, n = 3_u64, ok = true, x = -1.5_f64));
        assert_eq!(v, serde_json::json!({"correlation_id": odd, "n": 3, "ok": true, "x": -1.5}));
    }

    #[test]
    fn no_fields_is_an_empty_object_and_later_fields_merge() {
        assert_eq!(fields_of(|| tracing::error_span!("bare")), serde_json::json!({}));
        // Semantic-convention attributes are for the trace only.
        let v = fields_of(|| tracing::error_span!("request", http.route = "/x/{id}", correlation_id = "abc", otel.kind = "server"));
        assert_eq!(v, serde_json::json!({"correlation_id": "abc"}));
        let v = fields_of(|| {
            let span = tracing::error_span!("request", correlation_id = "abc", trace_id = tracing::field::Empty);
            span.record("trace_id", tracing::field::display("0af7651916cd43dd8448eb211c80319c"));
            span
        });
        assert_eq!(v, serde_json::json!({"correlation_id": "abc", "trace_id": "0af7651916cd43dd8448eb211c80319c"}));
    }
}

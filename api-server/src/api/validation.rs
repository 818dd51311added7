//! Request validation beyond the schema: Unicode-aware lengths (characters, not bytes),
//! trimming, formats. Collects every problem so one 400 names all bad fields.

use crate::{
    config::MetadataLimits,
    error::{ApiError, FieldError},
};

/// Accumulates field errors.
#[derive(Default)]
pub struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError { field: field.into(), message: message.into() });
    }

    /// A single-line text of at most `max` characters with something besides whitespace, kept
    /// trimmed. Checked as sent (the length counts the spaces a client sent), so the rule is
    /// exactly the one the OpenAPI document declares (`maxLength` and a pattern).
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> String {
        let n = value.chars().count();
        if value.trim().is_empty() {
            self.fail(field, "must not be empty");
        } else if n > max {
            self.fail(field, format!("must be at most {max} characters (has {n})"));
        } else if value.chars().any(char::is_control) {
            self.fail(field, "must not contain control characters");
        }
        value.trim().to_owned()
    }

    /// A language code: `en`, `de-AT`.
    pub fn language(&mut self, field: &str, value: &str) -> String {
        let b = value.as_bytes();
        let ok = match b.len() {
            2 => b.iter().all(u8::is_ascii_lowercase),
            5 => b[..2].iter().all(u8::is_ascii_lowercase) && b[2] == b'-' && b[3..].iter().all(u8::is_ascii_uppercase),
            _ => false,
        };
        if !ok {
            self.fail(field, "must be a language code such as en or de-AT");
        }
        value.to_owned()
    }

    /// An email address, normalised to lower case.
    pub fn email(&mut self, field: &str, value: &str) -> String {
        let v = value.trim().to_lowercase();
        let valid = v.chars().count() <= 254
            && !v.chars().any(|c| c.is_whitespace() || c.is_control())
            && v.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if !valid {
            self.fail(field, "must be an email address");
        }
        v
    }

    /// An embedding: exactly `dim` finite numbers that fit a 32-bit float. The whole vector
    /// is one error (naming the first bad element), not up to `dim` of them.
    pub fn embedding(&mut self, field: &str, values: &[f64], dim: u64) -> Vec<f32> {
        if values.len() as u64 != dim {
            self.fail(field, format!("must hold exactly {dim} numbers (JEEX_VECTOR_DIM); has {}", values.len()));
            return Vec::new();
        }
        let vector: Vec<f32> = values.iter().map(|v| *v as f32).collect();
        if let Some(i) = vector.iter().position(|v| !v.is_finite()) {
            self.fail(&format!("{field}/{i}"), "must be a finite number within the 32-bit float range");
        }
        vector
    }

    /// A metadata value: a JSON object within `limits` (size of its compact JSON, depth).
    pub fn metadata(&mut self, field: &str, value: &serde_json::Value, limits: MetadataLimits) {
        if !value.is_object() {
            return self.fail(field, "must be a JSON object");
        }
        let depth = depth(value);
        if depth > limits.max_depth {
            return self.fail(field, format!("must nest at most {} levels (JEEX_METADATA_MAX_DEPTH); has {depth}", limits.max_depth));
        }
        // Counted without building the text.
        let mut counter = ByteCount(0);
        let _ = serde_json::to_writer(&mut counter, value);
        if counter.0 > limits.max_bytes {
            self.fail(field, format!("must be at most {} bytes as JSON (JEEX_METADATA_MAX_SIZE); has {}", limits.max_bytes, counter.0));
        }
    }

    /// At most `max` UTF-8 bytes.
    pub fn max_bytes(&mut self, field: &str, value: &str, max: usize) {
        if value.len() > max {
            self.fail(field, format!("must be at most {max} bytes of UTF-8 (has {})", value.len()));
        }
    }

    /// An integer within bounds.
    pub fn range(&mut self, field: &str, value: i32, min: i32, max: i32) {
        if !(min..=max).contains(&value) {
            self.fail(field, format!("must be from {min} to {max}"));
        }
    }

    /// `Ok` when nothing failed.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation { detail: "the request body is not valid".into(), errors: self.errors })
        }
    }
}

/// Nesting levels of a value (a scalar is 0, `{}` is 1); iterative, so no value overflows it.
fn depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match v {
            serde_json::Value::Object(m) => Box::new(m.values()),
            serde_json::Value::Array(a) => Box::new(a.iter()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        stack.extend(children.map(|c| (c, level + 1)));
    }
    deepest
}

/// A writer that only counts.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters_not_bytes() {
        let mut c = Check::default();
        assert_eq!(c.text("/name", " ÄÖÜ ", 5), "ÄÖÜ");
        c.text("/name", "😀😀😀😀", 3);
        c.text("/spaced", "  ab  ", 3);
        c.text("/title", "   ", 10);
        c.language("/language", "EN");
        c.email("/email", "no-at-sign");
        let Err(ApiError::Validation { errors, .. }) = c.finish() else { panic!("expected errors") };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["/name", "/spaced", "/title", "/language", "/email"]);
    }

    #[test]
    fn metadata_is_held_to_its_size_and_depth() {
        let limits = MetadataLimits { max_bytes: 32, max_depth: 3 };
        let mut c = Check::default();
        c.metadata("/a", &serde_json::json!({"x": {"y": [1]}}), limits);
        assert!(c.finish().is_ok());
        let mut c = Check::default();
        c.metadata("/deep", &serde_json::json!({"x": {"y": [[1]]}}), limits);
        c.metadata("/big", &serde_json::json!({"x": "y".repeat(30)}), limits);
        c.metadata("/array", &serde_json::json!([]), limits);
        let Err(ApiError::Validation { errors, .. }) = c.finish() else { panic!("expected errors") };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["/deep", "/big", "/array"]);
        assert!(errors[0].message.contains("has 4") && errors[1].message.contains("JEEX_METADATA_MAX_SIZE"), "{errors:?}");
    }

    #[test]
    fn good_values_pass() {
        let mut c = Check::default();
        assert_eq!(c.email("/email", " Ann@Example.COM "), "ann@example.com");
        c.language("/language", "de-AT");
        c.range("/current_step", 3, 1, 100);
        assert!(c.finish().is_ok());
    }
}

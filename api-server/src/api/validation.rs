//! Request validation beyond the schema: Unicode-aware lengths (characters, not bytes),
//! trimming, formats. Collects every problem so one 400 names all bad fields.

use crate::error::{ApiError, FieldError};

/// Accumulates field errors.
#[derive(Default)]
pub struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError { field: field.into(), message: message.into() });
    }

    /// A trimmed single-line text of 1–`max` characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> String {
        let v = value.trim();
        let n = v.chars().count();
        if n == 0 {
            self.fail(field, "must not be empty");
        } else if n > max {
            self.fail(field, format!("must be at most {max} characters (has {n})"));
        } else if v.chars().any(char::is_control) {
            self.fail(field, "must not contain control characters");
        }
        v.to_owned()
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

    /// A JSON object.
    pub fn object(&mut self, field: &str, value: &serde_json::Value) {
        if !value.is_object() {
            self.fail(field, "must be a JSON object");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters_not_bytes() {
        let mut c = Check::default();
        assert_eq!(c.text("/name", "  ÄÖÜ  ", 3), "ÄÖÜ");
        c.text("/name", "😀😀😀😀", 3);
        c.text("/title", "   ", 10);
        c.language("/language", "EN");
        c.email("/email", "no-at-sign");
        let Err(ApiError::Validation { errors, .. }) = c.finish() else { panic!("expected errors") };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["/name", "/title", "/language", "/email"]);
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

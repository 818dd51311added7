//! The one error every configuration problem becomes: the variable, what is wrong and an
//! example of a good value, displayed as one line.

use std::{borrow::Cow, fmt};

/// A configuration value that failed validation. Displays as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with its value.
    pub problem: String,
    /// An example of an acceptable value (one that depends on another variable's is built).
    pub example: Cow<'static, str>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The problem may quote the value, and the value may be a URL with a password.
        let problem = crate::telemetry::redact::redact(&self.problem);
        write!(f, "invalid configuration: {}: {problem} (example: {}={})", self.variable, self.variable, self.example)
    }
}

impl std::error::Error for ConfigError {}

/// The error for `variable`.
pub(super) fn err(variable: &'static str, problem: String, example: impl Into<Cow<'static, str>>) -> ConfigError {
    ConfigError { variable, problem, example: example.into() }
}

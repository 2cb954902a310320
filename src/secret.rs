//! A value that must never be printed: passwords from config, env or `*_FILE`. Debug shows a
//! placeholder, and there is no Display, so a secret cannot reach a log line by accident.

use serde::{Deserialize, Serialize};

/// A value that must never be printed. Debug shows a placeholder.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

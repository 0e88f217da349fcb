//! The one error a parser in this crate returns: a message fit to show to the API caller.
//!
//! Messages name the offending field or value shape but never echo secrets (passwords are never quoted).

use std::fmt;

/// Input that does not satisfy a domain rule. The message is safe to return in an API response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError(String);

impl ValidationError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValidationError {}

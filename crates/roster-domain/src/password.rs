//! A password as typed by its owner: a secret that never prints and never serializes.
//!
//! The upper bound protects the hasher from oversized inputs (a 1 MiB "password" must be refused
//! before any hashing). What a *new* password must be is the connection's policy (`policy.rs`).

use std::fmt;

use crate::error::ValidationError;

pub struct Password(String);

impl Password {
    /// Longest accepted password, in bytes (4 KiB is far above any passphrase and cheap to hash).
    pub const MAX_BYTES: usize = 4096;

    /// Accept a candidate password for *verification* (login): only the size is checked.
    pub fn for_verification(s: String) -> Result<Self, ValidationError> {
        if s.is_empty() || s.len() > Self::MAX_BYTES {
            return Err(ValidationError::new("Password is too long or empty"));
        }
        Ok(Self(s))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(****)")
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        // Best effort: overwrite the bytes before the allocation is released.
        let bytes = std::mem::take(&mut self.0).into_bytes();
        let mut bytes = bytes;
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_rules() {
        assert!(Password::for_verification(String::new()).is_err());
        assert!(Password::for_verification("x".repeat(Password::MAX_BYTES)).is_ok());
        assert!(Password::for_verification("x".repeat(Password::MAX_BYTES + 1)).is_err());
        assert_eq!(format!("{:?}", Password::for_verification("hunter2".into()).ok()), "Some(Password(****))");
    }
}

//! Credentials and tokens: password hashing on a bounded pool of threads, JWT signing and
//! verification, JWKS, the fast hash used for machine secrets, and sealing secrets at rest.
//!
//! This crate never logs a password, a secret or a token, and its error messages never contain one.

pub mod hasher;
pub mod jwt;
pub mod seal;
pub mod secret;

pub use hasher::{HashError, HasherConfig, PasswordHasher};
pub use jwt::{AccessClaims, KeySet, NewKey, TokenError};
pub use seal::{MasterKey, SealError};

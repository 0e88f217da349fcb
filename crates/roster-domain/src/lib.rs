//! Pure types and rules of Roster.
//!
//! Everything here is parsed at the edge and trusted inside: a value of one of these types is valid by
//! construction (`Email`, `UserId`, `TenantName`, `Metadata` ...). This crate never performs I/O and never
//! depends on HTTP or SQL crates, so every rule can be tested in isolation and reused by every surface.

pub mod account;
pub mod email;
pub mod error;
pub mod ids;
pub mod log;
pub mod metadata;
pub mod password;
pub mod policy;
pub mod query;
pub mod scope;
pub mod secret;
pub mod time;
pub mod user;

pub use email::Email;
pub use error::ValidationError;
pub use ids::{ClientId, ConnectionId, LogId, TenantId, TenantName, UserId};
pub use metadata::{Metadata, MetadataKind, MetadataLimits};
pub use password::Password;
pub use policy::{PasswordPolicy, PolicyContext, PolicyLevel, PolicyViolation, Rule, RuleCode, StrengthReport};
pub use time::Timestamp;

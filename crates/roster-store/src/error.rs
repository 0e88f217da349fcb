//! The store's error type. Backends map driver errors here, in one place each; callers match on
//! variants, never on driver messages.

use roster_domain::ValidationError;

/// Which uniqueness rule a write broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    TenantName,
    UserId,
    Email,
    Username,
    Other,
}

impl ConflictKind {
    /// Which rule a unique violation broke, from the constraint name (PostgreSQL) or the columns
    /// SQLite names in its message.
    pub(crate) fn from_violation(what: &str) -> Self {
        if what.contains("users_connection_email") || what.contains("users.email_lower") {
            Self::Email
        } else if what.contains("users_connection_username") || what.contains("users.username") {
            Self::Username
        } else if what.contains("users_pkey") || what.contains("users.tenant_id, users.user_id") {
            Self::UserId
        } else if what.contains("tenants_name") || what.contains("tenants.name") {
            Self::TenantName
        } else {
            Self::Other
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0:?} already exists")]
    Conflict(ConflictKind),
    /// A read-modify-write callback refused the change.
    #[error("rejected: {0}")]
    Rejected(ValidationError),
    #[error("configuration: {0}")]
    Config(String),
    /// The database could not be reached (pool timeout, connection refused).
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// This error as told to another caller of the same shared write (a batch): an unavailable
    /// database stays unavailable (503, try again), anything else is an internal error.
    pub fn for_another_caller(&self) -> Self {
        match self {
            Self::Unavailable(_) => Self::Unavailable(sqlx::Error::PoolTimedOut),
            _ => Self::Internal("a write shared with other requests failed".into()),
        }
    }

    pub(crate) fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }

    pub(crate) fn from_sqlx(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                // PostgreSQL names the constraint; SQLite names the columns in its message.
                let what = format!("{} {}", db.constraint().unwrap_or(""), db.message());
                Self::Conflict(ConflictKind::from_violation(&what))
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                Self::Unavailable(e)
            }
            // The server refuses or drops connections (shutdown, restart, connection limits, a database
            // closed to connections): temporary, answer 503 rather than 500.
            sqlx::Error::Database(db) if db.code().is_some_and(|c| is_unavailable_code(&c)) => Self::Unavailable(e),
            _ => Self::Internal(Box::new(e)),
        }
    }
}

/// SQLSTATE codes (PostgreSQL) and SQLite result codes that mean "the database cannot serve now".
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08")                      // connection exceptions
        || matches!(code, "57P01" | "57P02" | "57P03" // admin shutdown, crash shutdown, cannot connect now
            | "53300"                             // too many connections
            | "55000"                             // e.g. database does not allow connections
            | "5" | "6" | "261" | "517") // SQLite BUSY, LOCKED and their extended forms
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::from_sqlx(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::internal(e)
    }
}

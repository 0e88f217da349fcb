//! New passwords: the connection's policy (strength, dictionary, personal information, history) applied
//! the same way wherever a password is set — signup, the reset page, `PATCH /users/{id}`, the portal —
//! and the rules shown on a form.
//!
//! History needs the previous hashes: the candidate is verified against each on the hashing pool
//! (never on the async runtime). Never log a password or say which old password matched.

use roster_domain::Password;
use roster_domain::policy::{PasswordPolicy, PolicyContext, PolicyViolation};
use roster_domain::user::User;
use roster_store::Connection;
use serde_json::Value;

use crate::state::AppState;
use crate::tenant::TenantCtx;

/// Why a new password is refused.
pub enum Refusal {
    /// The policy: Auth0's error body (for the APIs) and a sentence (for pages).
    Policy {
        body: Value,
        summary: String,
    },
    /// Over the size limit.
    TooLong,
    /// The hasher failed or is overloaded (not the user's fault).
    Unavailable(roster_auth::HashError),
    Store(roster_store::StoreError),
}

impl Refusal {
    /// A sentence fit for a hosted page or an API message.
    pub fn summary(&self) -> String {
        match self {
            Self::Policy { summary, .. } => summary.clone(),
            Self::TooLong => format!("Password is too long (at most {} bytes).", Password::MAX_BYTES),
            Self::Unavailable(_) | Self::Store(_) => "The password could not be checked right now; try again.".into(),
        }
    }
}

/// The policy of a connection.
pub fn policy(connection: &Connection) -> PasswordPolicy {
    PasswordPolicy::from_connection_options(&connection.options)
}

/// The rules to show next to a password field, in plain English.
pub fn rules_text(connection: &Connection) -> Vec<String> {
    policy(connection).rules().into_iter().map(|r| r.text()).collect()
}

/// What the policy compares a password with: the user's own words and the tenant's.
pub fn context(t: &TenantCtx, connection: &Connection, user: &User) -> PolicyContext {
    PolicyContext::for_user(user).with_context_words([t.name.as_str(), connection.name.as_str()])
}

/// Check a new password for `user` against the connection's policy, including its history (the
/// newest `size` passwords the user set). Returns the accepted password.
pub async fn check_new(
    state: &AppState,
    t: &TenantCtx,
    connection: &Connection,
    user: &User,
    raw: String,
    check_history: bool,
) -> Result<Password, Refusal> {
    if raw.len() > Password::MAX_BYTES {
        return Err(Refusal::TooLong);
    }
    let policy = policy(connection);
    if let Err(v) = policy.check(&raw, &context(t, connection, user)) {
        return Err(Refusal::Policy { body: v.to_auth0_json(), summary: v.to_string() });
    }
    let password = Password::for_verification(raw).map_err(|_| Refusal::TooLong)?;
    if let (true, Some(size)) = (check_history, policy.history_size()) {
        let previous = t.store.password_history(&user.user_id, u32::from(size)).await.map_err(Refusal::Store)?;
        for hash in previous {
            let candidate = Password::for_verification(password.expose().to_owned()).map_err(|_| Refusal::TooLong)?;
            match state.hasher.verify(candidate, hash).await {
                Ok(true) => {
                    let v = PolicyViolation::History;
                    return Err(Refusal::Policy { body: v.to_auth0_json(), summary: v.to_string() });
                }
                Ok(false) => {}
                Err(e) => return Err(Refusal::Unavailable(e)),
            }
        }
    }
    Ok(password)
}

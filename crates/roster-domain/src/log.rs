//! Log events with Auth0's event type codes. The log is append-only; an event describing a state change
//! is written in the same transaction as the change.

use serde_json::Value;

use crate::ids::{ClientId, ConnectionId, UserId};
use crate::time::Timestamp;

/// Auth0 event type codes Roster emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogType {
    /// Success API Operation (a Management API write).
    Sapi,
    /// Failed API Operation.
    Fapi,
    /// Success user deletion.
    Sdu,
    /// Failed user deletion.
    Fdu,
    /// Success exchange: client credentials for an access token.
    Seccft,
    /// Failed exchange: client credentials for an access token.
    Feccft,
    /// Success login.
    S,
    /// Failed login (e.g. blocked user).
    F,
    /// Failed login: wrong password.
    Fp,
    /// Failed login: unknown user.
    Fu,
    /// Success signup.
    Ss,
    /// Failed signup.
    Fs,
    /// Success exchange: authorization code for an access token.
    Seacft,
    /// Failed exchange: authorization code for an access token.
    Feacft,
    /// Success exchange: refresh token for an access token.
    Sertft,
    /// Failed exchange: refresh token for an access token.
    Fertft,
    /// Success logout.
    Slo,
    /// Success email verification.
    Sv,
    /// Failed email verification.
    Fv,
    /// Success verification email request.
    Svr,
    /// Success password change.
    Scp,
    /// Failed password change.
    Fcp,
    /// Success change-password request (a reset mail was queued).
    Scpr,
    /// Failed change-password request (e.g. unknown user).
    Fcpr,
    /// Too many failed login attempts: the identifier (and IP) is blocked.
    LimitWc,
    /// A brute-force block was released (user blocked by too many attempts, now unblocked).
    Ublkdu,
    /// Too many attempts from one IP address across accounts (suspicious-IP throttling).
    LimitMu,
    /// Success change email (the new address was confirmed and is now the user's).
    Sce,
    /// Failed change email (e.g. the address was taken meanwhile).
    Fce,
    /// Roster: an email change was requested and awaits confirmation of the new address.
    EmailChangeRequested,
    /// Roster: a pending email change was cancelled ("this wasn't me" or a password reset).
    EmailChangeCancelled,
    /// Roster: the user accepted a version of the tenant's terms.
    TermsAccepted,
    /// Roster: the user downloaded their data (GDPR Art. 15/20).
    DataExport,
}

impl LogType {
    pub fn code(self) -> &'static str {
        match self {
            Self::Sapi => "sapi",
            Self::Fapi => "fapi",
            Self::Sdu => "sdu",
            Self::Fdu => "fdu",
            Self::Seccft => "seccft",
            Self::Feccft => "feccft",
            Self::S => "s",
            Self::F => "f",
            Self::Fp => "fp",
            Self::Fu => "fu",
            Self::Ss => "ss",
            Self::Fs => "fs",
            Self::Seacft => "seacft",
            Self::Feacft => "feacft",
            Self::Sertft => "sertft",
            Self::Fertft => "fertft",
            Self::Slo => "slo",
            Self::Sv => "sv",
            Self::Fv => "fv",
            Self::Svr => "svr",
            Self::Scp => "scp",
            Self::Fcp => "fcp",
            Self::Scpr => "scpr",
            Self::Fcpr => "fcpr",
            Self::LimitWc => "limit_wc",
            Self::Ublkdu => "ublkdu",
            Self::LimitMu => "limit_mu",
            Self::Sce => "sce",
            Self::Fce => "fce",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChangeCancelled => "email_change_cancelled",
            Self::TermsAccepted => "terms_accepted",
            Self::DataExport => "data_export",
        }
    }
}

/// One event, before storage gives it an id.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    pub kind: LogType,
    pub date: Timestamp,
    pub description: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub client_id: Option<ClientId>,
    pub client_name: Option<String>,
    pub user_id: Option<UserId>,
    pub user_name: Option<String>,
    pub connection: Option<String>,
    pub connection_id: Option<ConnectionId>,
    pub audience: Option<String>,
    pub scope: Option<String>,
    pub details: Value,
}

impl LogEvent {
    pub fn new(kind: LogType, description: impl Into<String>) -> Self {
        Self {
            kind,
            date: Timestamp::now(),
            description: description.into(),
            ip: None,
            user_agent: None,
            client_id: None,
            client_name: None,
            user_id: None,
            user_name: None,
            connection: None,
            connection_id: None,
            audience: None,
            scope: None,
            details: Value::Null,
        }
    }
}

//! The Management API (`/t/{tenant}/api/v2/...`): Auth0-compatible resources for back ends holding an
//! M2M token (and, for their own profile, end users holding a user-scoped token).

pub mod attack;
pub mod clients;
pub mod connections;
pub mod emails;
pub mod settings;
pub mod tickets;
pub mod users;
pub mod view;

use roster_domain::log::{LogEvent, LogType};

use crate::extract::{Principal, Subject};

/// A `sapi`/`fapi`/`sdu` event carrying who made the call.
pub(crate) fn api_event(p: &Principal, kind: LogType, description: impl Into<String>) -> LogEvent {
    let mut ev = LogEvent::new(kind, description);
    ev.client_id = p.client_id.clone();
    if let Subject::User(u) = &p.subject {
        ev.user_id = Some(u.clone());
    }
    ev.audience = Some(p.tenant.management_audience.clone());
    ev
}

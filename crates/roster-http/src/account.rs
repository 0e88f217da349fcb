//! The self-service account, shared by the hosted portal (`pages/account.rs`) and the JSON API
//! (`me.rs`): what a user may see and change about themselves, and how each change is committed.
//!
//! Every operation takes the user as the caller authenticated (their session or their token), never
//! a user id from the request, so no request can reach another user's account. What a user may
//! write is decided here from the tenant's settings: the root fields the tenant lets users edit
//! (none when an identity provider owns the profile), and the `user_metadata` keys its profile schema
//! declares editable; `app_metadata` is never writable and is shown only where the schema says so.
//! Sensitive changes (password, email, deletion) need the current password; an email change becomes
//! real only when the new address is confirmed, and the old address can stop it.

use roster_domain::account::{AccountSettings, Branding, TERMS_ACCEPTED_KEY};
use roster_domain::log::{LogEvent, LogType};
use roster_domain::metadata::{MetadataKind, MetadataPatch};
use roster_domain::user::{User, bounded, parse_picture};
use roster_domain::{Email, Timestamp, ValidationError};
use roster_store::{Connection, Effects, Redeemed, Revocation, Session, StoreError, ticket_kind};
use serde_json::{Map, Value, json};

use crate::authentication::login::{Verdict, check_credentials};
use crate::authentication::token::GrantCtx;
use crate::passwords;
use crate::state::AppState;
use crate::tenant::TenantCtx;
use crate::tickets;

/// How long the link to confirm a new address lives.
pub const EMAIL_CHANGE_TTL_SECS: i64 = 86_400;
/// How long the "this wasn't me" link in the old address's notice lives.
pub const EMAIL_CHANGE_CANCEL_TTL_SECS: i64 = 7 * 86_400;
/// Most log events a data export carries (the newest).
pub const EXPORT_LOG_LIMIT: u32 = 1000;

/// The tenant's settings as the account uses them.
pub struct Settings {
    pub account: AccountSettings,
    pub branding: Branding,
    pub friendly_name: String,
    pub support_email: Option<String>,
    /// The profile schema as the tenant wrote it (what `GET /me` shows apps).
    pub profile_schema_json: Value,
}

/// Read and parse the tenant's settings (stored settings were validated when written; a stored
/// object that no longer parses falls back to the defaults rather than breaking every page).
pub async fn settings(t: &TenantCtx) -> Result<Settings, StoreError> {
    let raw = t.store.tenant_settings().await?;
    let friendly_name = raw.get("friendly_name").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let account = AccountSettings::parse(raw.get("account_portal").unwrap_or(&Value::Null))
        .or_else(|_| AccountSettings::parse(&Value::Null))
        .map_err(StoreError::Rejected)?;
    let branding = Branding::parse(raw.get("branding").unwrap_or(&Value::Null), friendly_name.as_deref())
        .or_else(|_| Branding::parse(&Value::Null, friendly_name.as_deref()))
        .map_err(StoreError::Rejected)?;
    Ok(Settings {
        account,
        branding,
        friendly_name: friendly_name.unwrap_or_else(|| t.name.as_str().to_owned()),
        support_email: raw.get("support_email").and_then(Value::as_str).map(str::to_owned),
        profile_schema_json: raw
            .get("account_portal")
            .and_then(|p| p.get("profile_schema"))
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or_else(roster_domain::account::default_profile_schema),
    })
}

/// Why an account operation did not happen.
#[derive(Debug)]
pub enum AccountError {
    /// Input that breaks a rule: (field, message) pairs to show next to the fields.
    Invalid(Vec<(String, String)>),
    /// The current password is wrong (or missing).
    WrongPassword,
    /// The login is too old for this change: the user must enter their password again.
    ReauthenticationRequired,
    /// Brute-force protection or IP throttling refused the password check (no hash computed).
    TooManyAttempts,
    /// The tenant does not let users do this (portal disabled, profile owned by an identity provider).
    Forbidden(String),
    /// The account no longer exists (deleted meanwhile).
    Gone,
    /// Too many requests of this kind from this user (seconds to wait).
    Throttled(u64),
    Unavailable,
}

impl AccountError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![(field.to_owned(), message.into())])
    }

    /// One sentence for a page or an API message.
    pub fn message(&self) -> String {
        match self {
            Self::Invalid(errors) => errors.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join(" "),
            Self::WrongPassword => "The current password is wrong.".into(),
            Self::ReauthenticationRequired => "Enter your password again to confirm it's you.".into(),
            Self::TooManyAttempts => "Too many failed attempts. Try again later or reset your password.".into(),
            Self::Forbidden(m) => m.clone(),
            Self::Gone => "This account no longer exists.".into(),
            Self::Throttled(_) => "Too many requests. Try again later.".into(),
            Self::Unavailable => "The service is temporarily unavailable, try again.".into(),
        }
    }
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(m) => Self::Invalid(vec![("profile".into(), m.to_string())]),
            _ => Self::Unavailable,
        }
    }
}

impl From<ValidationError> for AccountError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(vec![("profile".into(), e.to_string())])
    }
}

/// Who is acting, and from where: the authenticated user's request.
pub struct Actor<'a> {
    pub state: &'a AppState,
    pub t: &'a TenantCtx,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The id hash of the portal session making the request (kept when other sessions end).
    pub session: Option<String>,
}

impl Actor<'_> {
    fn event(&self, kind: LogType, description: &str, user: &User) -> LogEvent {
        let mut ev = LogEvent::new(kind, description);
        ev.user_id = Some(user.user_id.clone());
        ev.user_name = user.email.as_ref().map(|e| e.as_str().to_owned());
        ev.ip = self.ip.clone();
        ev.user_agent = self.user_agent.clone();
        ev
    }

    fn grant_ctx(&self) -> GrantCtx<'_> {
        GrantCtx {
            state: self.state,
            tenant: self.t,
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            forwarded_for: None,
        }
    }
}

/// The user's connection (every account operation on passwords needs its policy and name).
pub async fn connection_of(t: &TenantCtx, user: &User) -> Result<Connection, AccountError> {
    t.store.connection(&user.connection_id).await?.ok_or(AccountError::Gone)
}

/// Whether an identity provider owns the profile (it rewrites the root fields at every login).
pub fn profile_synced(user: &User) -> bool {
    user.identities.first().is_some_and(|i| i.provider != "auth0")
}

/// Check the user's current password exactly as a login does: brute-force protection, one hash, the
/// failure counted. A success proves the user is present (re-authentication).
pub async fn verify_password(a: &Actor<'_>, user: &User, password: &str) -> Result<(), AccountError> {
    if password.is_empty() {
        return Err(AccountError::WrongPassword);
    }
    let identifier = match (&user.email, &user.username) {
        (Some(e), _) => e.as_str().to_owned(),
        (None, Some(u)) => u.clone(),
        (None, None) => return Err(AccountError::WrongPassword),
    };
    let connection = connection_of(a.t, user).await?;
    let ctx = a.grant_ctx();
    let verdict =
        check_credentials(&ctx, &connection.name, &identifier, password).await.map_err(|_| AccountError::Unavailable)?;
    match verdict {
        Verdict::Ok { user: found, success, .. } if found.user_id == user.user_id => {
            a.t.store.append_effects(success).await?;
            Ok(())
        }
        Verdict::TooManyAttempts(_) | Verdict::SuspiciousIp => Err(AccountError::TooManyAttempts),
        Verdict::Blocked(_) => Err(AccountError::Forbidden("This account is blocked.".into())),
        other => {
            let mut ev = a.event(LogType::Fp, "Wrong password (account re-authentication)", user);
            ev.connection = Some(connection.name.clone());
            drop(other);
            ctx.record(ev).await;
            Err(AccountError::WrongPassword)
        }
    }
}

/// A profile change a user asked for: root fields (`None` clears) and `user_metadata` keys
/// (`None` removes).
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub root: Vec<(String, Option<String>)>,
    pub metadata: Vec<(String, Option<Value>)>,
}

impl ProfileChange {
    pub fn is_empty(&self) -> bool {
        self.root.is_empty() && self.metadata.is_empty()
    }
}

fn check_root(field: &str, value: &str) -> Result<Option<String>, String> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let checked = if field == "picture" { parse_picture(v) } else { bounded(field, v.to_owned(), 150) };
    checked.map(Some).map_err(|_| match field {
        "picture" => "Enter an http(s) URL of at most 2048 characters.".to_owned(),
        _ => "Use 1 to 150 characters, without control characters.".to_owned(),
    })
}

/// A `PATCH /me` body: editable root fields and `user_metadata` keys of the schema. Anything else
/// (other root fields, `app_metadata`, undeclared or read-only metadata keys) is refused, not ignored.
pub fn profile_from_json(body: &Map<String, Value>, s: &AccountSettings, user: &User) -> Result<ProfileChange, AccountError> {
    let mut change = ProfileChange::default();
    let mut errors = Vec::new();
    for (k, v) in body {
        match k.as_str() {
            "user_metadata" => {
                let Value::Object(m) = v else {
                    errors.push((k.clone(), "must be an object".to_owned()));
                    continue;
                };
                for (key, value) in m {
                    let Some(p) = s.profile_schema.property(key).filter(|p| !p.read_only) else {
                        errors.push((format!("user_metadata.{key}"), "is not a field you can edit".to_owned()));
                        continue;
                    };
                    match value {
                        Value::Null if p.required => errors.push((format!("user_metadata.{key}"), "is required".to_owned())),
                        Value::Null => change.metadata.push((key.clone(), None)),
                        other => match p.check(other) {
                            Ok(v) => change.metadata.push((key.clone(), Some(v))),
                            Err(m) => errors.push((format!("user_metadata.{key}"), m)),
                        },
                    }
                }
            }
            field if s.may_edit(field) => {
                if profile_synced(user) {
                    errors.push((field.to_owned(), "comes from your identity provider and cannot be changed here".to_owned()));
                    continue;
                }
                match v {
                    Value::Null => change.root.push((field.to_owned(), None)),
                    Value::String(sv) => match check_root(field, sv) {
                        Ok(v) => change.root.push((field.to_owned(), v)),
                        Err(m) => errors.push((field.to_owned(), m)),
                    },
                    _ => errors.push((field.to_owned(), "must be a string or null".to_owned())),
                }
            }
            other => errors.push((other.to_owned(), "is not a field you can edit".to_owned())),
        }
    }
    if errors.is_empty() { Ok(change) } else { Err(AccountError::Invalid(errors)) }
}

/// The portal's profile and preferences forms: every editable field is present in the form (an
/// unchecked checkbox is absent), so each is set or cleared; fields the form does not carry and keys
/// outside the schema are left as they are.
pub fn profile_from_form(
    form: &std::collections::HashMap<String, String>,
    section: FormSection,
    s: &AccountSettings,
    user: &User,
) -> Result<ProfileChange, AccountError> {
    let mut change = ProfileChange::default();
    let mut errors = Vec::new();
    match section {
        FormSection::Profile => {
            if profile_synced(user) {
                return Err(AccountError::Forbidden(
                    "Your profile comes from your identity provider and is updated at every login.".into(),
                ));
            }
            for field in &s.editable_fields {
                let raw = form.get(field.as_str()).map(String::as_str).unwrap_or("");
                match check_root(field, raw) {
                    Ok(v) => change.root.push((field.clone(), v)),
                    Err(m) => errors.push((field.clone(), m)),
                }
            }
        }
        FormSection::Preferences => {
            for p in s.profile_schema.properties.iter().filter(|p| !p.read_only) {
                match p.check_form(form.get(&format!("m.{}", p.key)).map(String::as_str)) {
                    Ok(v) => change.metadata.push((p.key.clone(), v)),
                    Err(m) => errors.push((p.key.clone(), m)),
                }
            }
        }
    }
    if errors.is_empty() { Ok(change) } else { Err(AccountError::Invalid(errors)) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormSection {
    Profile,
    Preferences,
}

/// Apply a profile change in one transaction (metadata merged one level deep, as Auth0 does).
pub async fn update_profile(a: &Actor<'_>, user: &User, change: ProfileChange) -> Result<User, AccountError> {
    if change.is_empty() {
        return Ok(user.clone());
    }
    let limits = a.state.cfg.metadata_limits;
    let mut patch = Map::new();
    for (k, v) in &change.metadata {
        patch.insert(k.clone(), v.clone().unwrap_or(Value::Null));
    }
    let meta =
        if patch.is_empty() { None } else { Some(MetadataPatch::parse(MetadataKind::User, Value::Object(patch), limits)?) };
    let root = change.root;
    let now = Timestamp::now();
    let mutate = Box::new(move |u: &mut User| -> Result<(), ValidationError> {
        for (field, value) in root {
            match field.as_str() {
                "name" => u.name = value,
                "given_name" => u.given_name = value,
                "family_name" => u.family_name = value,
                "nickname" => u.nickname = value,
                "picture" => u.picture = value,
                _ => return Err(ValidationError::new("not an editable field")),
            }
        }
        if let Some(m) = &meta {
            u.user_metadata.merge(m, MetadataKind::User, limits)?;
        }
        u.updated_at = now.max(Timestamp::from_millis(u.updated_at.millis() + 1));
        Ok(())
    });
    let ev = a.event(LogType::Sapi, "Profile updated by the user (account)", user);
    a.t.store.update_user(&user.user_id, mutate, None, Effects::log(ev)).await?.ok_or(AccountError::Gone)
}

/// Change the password: the current one is checked like a login, the new one against the policy;
/// every other session and refresh token ends, reset links and pending email changes are voided, and
/// the user is told by mail.
pub async fn change_password(a: &Actor<'_>, user: &User, current: &str, new: String) -> Result<(), AccountError> {
    verify_password(a, user, current).await?;
    let connection = connection_of(a.t, user).await?;
    let password = match passwords::check_new(a.state, a.t, &connection, user, new, true).await {
        Ok(p) => p,
        Err(passwords::Refusal::Unavailable(_) | passwords::Refusal::Store(_)) => return Err(AccountError::Unavailable),
        Err(r) => {
            let mut ev = a.event(LogType::Fcp, &format!("Password change refused: {}", r.summary()), user);
            ev.connection = Some(connection.name.clone());
            let _ = a.state.logs.record(a.t.id.clone(), ev).await;
            return Err(AccountError::invalid("new_password", r.summary()));
        }
    };
    let hash = a.state.hasher.hash(password).await.map_err(|_| AccountError::Unavailable)?;
    let mut ev = a.event(LogType::Scp, "Password changed by the user (account)", user);
    ev.connection = Some(connection.name.clone());
    ev.connection_id = Some(connection.id.clone());
    let effects =
        crate::pages::reset::after_password_change(a.state, a.t, user, &connection.name, hash.clone(), a.session.clone(), ev);
    let now = Timestamp::now();
    let mutate = Box::new(move |u: &mut User| -> Result<(), ValidationError> {
        u.last_password_reset = Some(now);
        u.updated_at = now.max(Timestamp::from_millis(u.updated_at.millis() + 1));
        Ok(())
    });
    a.t.store.update_user(&user.user_id, mutate, Some(hash), effects).await?.ok_or(AccountError::Gone)?;
    crate::attack::forget_blocks(a.t);
    Ok(())
}

/// The address a pending email change would move to, if one is waiting for confirmation.
pub async fn pending_email(t: &TenantCtx, user: &User) -> Result<Option<String>, StoreError> {
    Ok(t.store.live_ticket(&user.user_id, ticket_kind::EMAIL_CHANGE, Timestamp::now()).await?.and_then(|k| k.email))
}

/// Ask to change the login address (the caller has re-authenticated the user). Nothing about the
/// login changes now: the new address gets a link that makes it the email (verified) once opened,
/// and the current address gets a notice with a link that stops the change. Whether the new address
/// belongs to another account is not revealed here; the confirmation fails then.
pub async fn request_email_change(a: &Actor<'_>, user: &User, new_email: &str) -> Result<String, AccountError> {
    let new = Email::parse(new_email.trim()).map_err(|_| AccountError::invalid("email", "Enter a valid email address."))?;
    if user.email.as_ref().is_some_and(|e| e.as_str().eq_ignore_ascii_case(new.as_str())) {
        return Err(AccountError::invalid("email", "This is already your email address."));
    }
    // Each request mails an address the user chose: at most `reset_requests_per_hour` an hour per
    // user (and node), so an account cannot be used to flood someone's inbox.
    let decision = a.state.reset_limiter.check(&format!("{}|email-change|{}", a.t.id.as_str(), user.user_id.as_str()));
    if !decision.allowed {
        return Err(AccountError::Throttled(decision.retry_after));
    }
    let connection = connection_of(a.t, user).await?;
    let now = Timestamp::now();
    let confirm = tickets::issue(a.t, user, spec(ticket_kind::EMAIL_CHANGE, EMAIL_CHANGE_TTL_SECS));
    let mut confirm_ticket = confirm.ticket;
    confirm_ticket.email = Some(new.as_str().to_owned());
    let mut effects = Effects::log({
        let mut ev = a.event(LogType::EmailChangeRequested, "Email change requested; waiting for the new address", user);
        ev.connection = Some(connection.name.clone());
        ev.details = json!({ "new_email": new.as_str() });
        ev
    })
    // A new request replaces any pending one (and its cancel link).
    .with_revocation(Revocation::Tickets { user: user.user_id.clone(), kind: ticket_kind::EMAIL_CHANGE.into(), at: now })
    .with_revocation(Revocation::Tickets { user: user.user_id.clone(), kind: ticket_kind::EMAIL_CHANGE_CANCEL.into(), at: now })
    .with_ticket(confirm_ticket);
    let payload = json!({ "connection": connection.name, "new_email": new.as_str() });
    effects = effects.with_mail(tickets::mail(
        a.state,
        a.t,
        "change_email_verify",
        new.as_str(),
        Some(&user.user_id),
        payload.clone(),
        Some(&confirm.url),
    ));
    if let Some(old) = user.email.as_ref() {
        let cancel = tickets::issue(a.t, user, spec(ticket_kind::EMAIL_CHANGE_CANCEL, EMAIL_CHANGE_CANCEL_TTL_SECS));
        effects = effects.with_ticket(cancel.ticket).with_mail(tickets::mail(
            a.state,
            a.t,
            "change_email_notice",
            old.as_str(),
            Some(&user.user_id),
            payload,
            Some(&cancel.url),
        ));
    }
    a.t.store.append_effects(effects).await?;
    Ok(new.as_str().to_owned())
}

fn spec(kind: &'static str, ttl_secs: i64) -> tickets::TicketSpec {
    tickets::TicketSpec {
        kind,
        ttl_secs,
        result_url: None,
        client_id: None,
        mark_email_verified: false,
        include_email_in_redirect: false,
    }
}

/// What confirming a new address did.
pub enum Confirmed {
    Done(Box<User>),
    /// The link is unknown, used, expired or replaced.
    DeadLink,
    /// Another account of the connection took the address meanwhile.
    Taken,
}

/// Redeem an email-change link: the new address becomes the email, verified; the cancel link dies;
/// every session but `keep` (the browser confirming, if it is the user's) ends.
pub async fn confirm_email_change(a: &Actor<'_>, id_hash: &str, user: &User, new_email: &str) -> Result<Confirmed, AccountError> {
    let now = Timestamp::now();
    let Ok(email) = Email::parse(new_email) else { return Ok(Confirmed::DeadLink) };
    let old = user.email.clone();
    let mutate = Box::new(move |u: &mut User| -> Result<(), ValidationError> {
        if u.email != old {
            // The address changed another way since the request: this link is stale.
            return Err(ValidationError::new("the address changed since the link was sent"));
        }
        u.email = Some(email);
        u.email_verified = true;
        for i in u.identities.iter_mut().filter(|i| i.provider == "auth0") {
            if let Some(Value::Object(p)) = i.profile_data.as_mut() {
                p.remove("email");
            }
        }
        u.updated_at = now.max(Timestamp::from_millis(u.updated_at.millis() + 1));
        Ok(())
    });
    let mut ev = a.event(LogType::Sce, "Email changed: the new address was confirmed", user);
    ev.details = json!({ "new_email": new_email });
    let effects = Effects::log(ev)
        .with_revocation(Revocation::Tickets {
            user: user.user_id.clone(),
            kind: ticket_kind::EMAIL_CHANGE_CANCEL.into(),
            at: now,
        })
        .with_revocation(Revocation::Tickets {
            user: user.user_id.clone(),
            kind: ticket_kind::EMAIL_VERIFICATION.into(),
            at: now,
        })
        .with_revocation(Revocation::Tickets { user: user.user_id.clone(), kind: ticket_kind::PASSWORD_RESET.into(), at: now })
        .with_revocation(Revocation::Grants { user: user.user_id.clone(), keep_session: a.session.clone(), at: now });
    match a.t.store.redeem_ticket(id_hash, ticket_kind::EMAIL_CHANGE, now, mutate, None, effects).await {
        Ok(Redeemed::Done { user, .. }) => Ok(Confirmed::Done(user)),
        Ok(Redeemed::Invalid) | Err(StoreError::Rejected(_)) => Ok(Confirmed::DeadLink),
        Err(StoreError::Conflict(_)) => {
            let mut ev = a.event(LogType::Fce, "Email change failed: the address belongs to another account", user);
            ev.details = json!({ "new_email": new_email });
            let _ = a.t.store.append_effects(ev).await;
            Ok(Confirmed::Taken)
        }
        Err(_) => Err(AccountError::Unavailable),
    }
}

/// "This wasn't me": stop the pending change, end every session and refresh token, and make the
/// current password useless; returns the link of a fresh password reset for the owner to continue.
pub async fn cancel_email_change(a: &Actor<'_>, id_hash: &str, user: &User) -> Result<Option<String>, AccountError> {
    let now = Timestamp::now();
    let reset = tickets::issue(a.t, user, spec(ticket_kind::PASSWORD_RESET, a.state.cfg.reset_ticket_lifetime));
    let ev = a.event(LogType::EmailChangeCancelled, "Email change cancelled from the old address; password reset forced", user);
    let effects = Effects::log(ev)
        .with_revocation(Revocation::Tickets { user: user.user_id.clone(), kind: ticket_kind::EMAIL_CHANGE.into(), at: now })
        .with_revocation(Revocation::Tickets { user: user.user_id.clone(), kind: ticket_kind::PASSWORD_RESET.into(), at: now })
        .with_revocation(Revocation::Grants { user: user.user_id.clone(), keep_session: None, at: now })
        .with_revocation(Revocation::Password { user: user.user_id.clone() })
        .with_ticket(reset.ticket);
    let noop = Box::new(|_: &mut User| Ok(()));
    match a.t.store.redeem_ticket(id_hash, ticket_kind::EMAIL_CHANGE_CANCEL, now, noop, None, effects).await {
        Ok(Redeemed::Done { .. }) => Ok(Some(reset.url)),
        Ok(Redeemed::Invalid) => Ok(None),
        Err(_) => Err(AccountError::Unavailable),
    }
}

/// Whether the user still has to accept the tenant's current terms.
pub fn terms_pending<'s>(s: &'s AccountSettings, user: &User) -> Option<&'s roster_domain::account::Terms> {
    s.terms.as_ref().filter(|t| roster_domain::account::accepted_terms(user.app_metadata.as_map()) != Some(t.version.as_str()))
}

/// Record that the user accepted `version` (which must be the current one) in `app_metadata`.
pub async fn accept_terms(a: &Actor<'_>, user: &User, s: &AccountSettings, version: &str) -> Result<User, AccountError> {
    let Some(terms) = s.terms.as_ref() else { return Err(AccountError::invalid("version", "There are no terms to accept.")) };
    if terms.version != version {
        return Err(AccountError::invalid("version", "These terms are not the current ones; reload the page."));
    }
    let now = Timestamp::now();
    let record = json!({ "version": terms.version, "accepted_at": now.to_iso() });
    let mut ev = a.event(LogType::TermsAccepted, "Terms accepted", user);
    ev.details = json!({ "version": terms.version, "url": terms.url });
    let mutate = Box::new(move |u: &mut User| -> Result<(), ValidationError> {
        let mut m = u.app_metadata.as_map().clone();
        m.insert(TERMS_ACCEPTED_KEY.to_owned(), record);
        u.app_metadata = roster_domain::metadata::Metadata::from_trusted(m);
        u.updated_at = now.max(Timestamp::from_millis(u.updated_at.millis() + 1));
        Ok(())
    });
    a.t.store.update_user(&user.user_id, mutate, None, Effects::log(ev)).await?.ok_or(AccountError::Gone)
}

/// One session as the user sees it.
pub fn session_json(s: &Session, current: Option<&str>) -> Value {
    json!({
        "id": s.id_hash,
        "current": current == Some(s.id_hash.as_str()),
        "user_agent": s.user_agent,
        "ip": s.ip,
        "created_at": s.created_at.to_iso(),
        "last_seen_at": s.last_seen_at.to_iso(),
        "authenticated_at": s.authenticated_at.to_iso(),
        "expires_at": s.expires_at.to_iso(),
    })
}

/// End one of the user's sessions (a session id of another user matches nothing).
pub async fn revoke_session(a: &Actor<'_>, user: &User, id: &str) -> Result<bool, AccountError> {
    let now = Timestamp::now();
    let live = a.t.store.user_sessions(&user.user_id, now).await?;
    if !live.iter().any(|s| s.id_hash == id) {
        return Ok(false);
    }
    let ev = a.event(LogType::Slo, "Session ended by the user (account)", user);
    let effects =
        Effects::log(ev).with_revocation(Revocation::Session { user: user.user_id.clone(), id_hash: id.to_owned(), at: now });
    a.t.store.append_effects(effects).await?;
    Ok(true)
}

/// End every session and refresh token of the user but the current session.
pub async fn revoke_other_sessions(a: &Actor<'_>, user: &User) -> Result<(), AccountError> {
    let ev = a.event(LogType::Slo, "Other sessions ended by the user (account)", user);
    let effects = Effects::log(ev).with_revocation(Revocation::Grants {
        user: user.user_id.clone(),
        keep_session: a.session.clone(),
        at: Timestamp::now(),
    });
    a.t.store.append_effects(effects).await?;
    Ok(())
}

/// The account as its owner sees it (the portal's data and `GET /me`).
pub fn account_json(user: &User, s: &AccountSettings, pending: Option<&str>) -> Value {
    let visible: Map<String, Value> = s
        .visible_app_metadata
        .iter()
        .filter_map(|(k, _)| user.app_metadata.as_map().get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    json!({
        "user_id": user.user_id.as_str(),
        "email": user.email.as_ref().map(|e| e.as_str()),
        "email_verified": user.email_verified,
        "pending_email": pending,
        "username": user.username,
        "name": user.name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "nickname": user.nickname,
        "picture": user.picture,
        "user_metadata": user.user_metadata.as_map(),
        "app_metadata": visible,
        "created_at": user.created_at.to_iso(),
        "updated_at": user.updated_at.to_iso(),
        "last_login": user.last_login.map(Timestamp::to_iso),
        "last_password_reset": user.last_password_reset.map(Timestamp::to_iso),
        "terms_accepted": user.app_metadata.as_map().get(TERMS_ACCEPTED_KEY),
        "editable_fields": if profile_synced(user) { Vec::new() } else { s.editable_fields.clone() },
        "profile_synced": profile_synced(user),
    })
}

/// Everything stored about the user (GDPR Art. 15 and 20): profile, both metadata objects,
/// identities, sessions and the user's log events, as one JSON document.
pub async fn export(a: &Actor<'_>, user: &User) -> Result<Value, AccountError> {
    let now = Timestamp::now();
    let sessions: Vec<Value> =
        a.t.store.user_sessions(&user.user_id, now).await?.iter().map(|s| session_json(s, a.session.as_deref())).collect();
    let ev = a.event(LogType::DataExport, "The user downloaded their data", user);
    a.t.store.append_effects(ev).await?;
    let logs: Vec<Value> = a.t.store.logs(Some(&user.user_id), EXPORT_LOG_LIMIT).await?.iter().map(log_json).collect();
    let mut profile = crate::management::view::user_json(user);
    if let Value::Object(p) = &mut profile {
        p.remove("identities");
        p.remove("user_metadata");
        p.remove("app_metadata");
    }
    Ok(json!({
        "exported_at": now.to_iso(),
        "tenant": a.t.name.as_str(),
        "profile": profile,
        "user_metadata": user.user_metadata.as_map(),
        "app_metadata": user.app_metadata.as_map(),
        "identities": user.identities,
        "sessions": sessions,
        "logs": logs,
    }))
}

/// A log event in Auth0's `/logs` shape.
fn log_json(r: &roster_store::LogRecord) -> Value {
    json!({
        "log_id": r.log_id,
        "date": r.date.to_iso(),
        "type": r.kind,
        "description": r.description,
        "client_id": r.client_id,
        "user_id": r.user_id.as_ref().map(|u| u.as_str()),
        "user_name": r.user_name,
        "ip": r.ip,
        "user_agent": r.user_agent,
        "connection": r.connection,
        "details": r.details,
    })
}

/// Delete the account and everything attached to it, in one transaction: profile, identities,
/// credentials, sessions, refresh tokens, tickets, unsent mail; the log keeps a pseudonym. The
/// owner receives a confirmation at the address the account had.
pub async fn delete_account(a: &Actor<'_>, user: &User) -> Result<(), AccountError> {
    let mut ev = LogEvent::new(LogType::Sdu, "User deleted their account");
    ev.user_id = Some(user.user_id.clone());
    let mut effects = Effects::log(ev);
    if let Some(email) = user.email.as_ref() {
        let lang = user.user_metadata.as_map().get("language").cloned().unwrap_or(Value::Null);
        let payload = json!({ "user": { "email": email.as_str() }, "request_language": lang });
        effects = effects.with_mail(tickets::mail(a.state, a.t, "account_deleted", email.as_str(), None, payload, None));
    }
    if a.t.store.delete_user(&user.user_id, effects).await? { Ok(()) } else { Err(AccountError::Gone) }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use roster_domain::{ConnectionId, UserId};

    use super::*;

    fn user(provider: &str) -> User {
        let mut u = User::new_database(
            UserId::parse("auth0|0123456789abcdef01234567").expect("id"),
            ConnectionId::parse("con_test").expect("connection"),
            "Username-Password-Authentication",
            Email::parse("ann@example.com").expect("email"),
            "https://img.example/a.png".into(),
            Timestamp::from_millis(0),
        );
        u.identities[0].provider = provider.into();
        u
    }

    fn settings() -> AccountSettings {
        AccountSettings::parse(&Value::Null).expect("defaults")
    }

    #[test]
    fn a_provider_owned_profile_is_read_only() {
        let s = settings();
        let body = json!({"name": "Ann", "user_metadata": {"language": "fr"}});
        let Value::Object(body) = body else { unreachable!("object") };
        let own = profile_from_json(&body, &s, &user("auth0")).expect("database user edits");
        assert_eq!(own.root, vec![("name".to_owned(), Some("Ann".to_owned()))]);
        let social = user("google-oauth2");
        assert!(profile_synced(&social));
        match profile_from_json(&body, &s, &social) {
            Err(AccountError::Invalid(errors)) => assert_eq!(errors.len(), 1, "{errors:?}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Preferences stay the user's own, whoever provides the profile.
        let Value::Object(prefs) = json!({"user_metadata": {"language": "fr"}}) else { unreachable!("object") };
        assert!(profile_from_json(&prefs, &s, &social).is_ok());
        let form = HashMap::from([("name".to_owned(), "Ann".to_owned())]);
        assert!(matches!(profile_from_form(&form, FormSection::Profile, &s, &social), Err(AccountError::Forbidden(_))));
        assert_eq!(account_json(&social, &s, None)["editable_fields"], json!([]));
    }

    #[test]
    fn mass_assignment_is_refused_whole() {
        let s = settings();
        for body in [
            json!({"email": "x@example.com"}),
            json!({"app_metadata": {"plan": "gold"}}),
            json!({"user_metadata": {"undeclared": 1}}),
            json!({"name": "ok", "blocked": true}),
            json!({"user_metadata": {"language": "xx"}}),
            json!({"picture": "javascript:alert(1)"}),
        ] {
            let Value::Object(b) = body.clone() else { unreachable!("object") };
            assert!(matches!(profile_from_json(&b, &s, &user("auth0")), Err(AccountError::Invalid(_))), "{body}");
        }
    }

    #[test]
    fn terms_are_pending_until_this_version_is_accepted() {
        let mut s = settings();
        let mut u = user("auth0");
        assert!(terms_pending(&s, &u).is_none(), "no terms published");
        s.terms = Some(roster_domain::account::Terms { version: "2".into(), url: "https://t.example".into() });
        assert!(terms_pending(&s, &u).is_some());
        let mut m = Map::new();
        m.insert(TERMS_ACCEPTED_KEY.into(), json!({"version": "1"}));
        u.app_metadata = roster_domain::metadata::Metadata::from_trusted(m.clone());
        assert!(terms_pending(&s, &u).is_some(), "an older version");
        m.insert(TERMS_ACCEPTED_KEY.into(), json!({"version": "2"}));
        u.app_metadata = roster_domain::metadata::Metadata::from_trusted(m);
        assert!(terms_pending(&s, &u).is_none());
    }
}

//! `/api/v2/emails/provider`, `/api/v2/email-templates/{name}` and the outbox (`/api/v2/emails/outbox`):
//! where a tenant's mail goes, what it says, and what became of each message.
//!
//! The provider's credentials are sealed with the server master key before they are stored and are
//! never returned (`smtp_pass` is dropped from every response). A template is parsed and test-rendered
//! when it is saved, so a broken one is refused with the line at fault instead of failing at send
//! time. The outbox listing is Roster's own (Auth0 has none): status, attempts and the last error as
//! the relay recorded it, without links or rendered bodies. Only machine tokens reach these routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roster_domain::log::LogType;
use roster_domain::{Timestamp, UserId};
use roster_mail::template::{CustomTemplate, TemplateName};
use roster_store::{EmailProvider, EmailTemplate, OutboxFilter, OutboxRecord, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::api_event;
use super::clients::{invalid, machine_only, nullable, record_failure};
use super::users::ErrorBody;
use crate::error::ApiError;
use crate::extract::{
    ApiJson, ApiQuery, Authorized, CreateEmailProvider, CreateEmailTemplates, DeleteEmailProvider, ReadEmailProvider,
    ReadEmailTemplates, ReadOutbox, RetryOutbox, UpdateEmailProvider, UpdateEmailTemplates,
};
use crate::state::AppState;

// ---- provider ----

fn no_provider() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "The email provider does not exist.", Some("inexistent_email_provider"))
}

fn object(path: &str, v: Value) -> Result<Map<String, Value>, ApiError> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(invalid(format!("Expected type object on property {path}"))),
    }
}

fn parse_from_address(v: Option<String>) -> Result<Option<String>, ApiError> {
    match v {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if roster_mail::is_mailbox(&s) => Ok(Some(s)),
        Some(_) => Err(invalid("default_from_address must be an email address")),
    }
}

fn provider_json(state: &AppState, tenant: &roster_domain::TenantId, p: &EmailProvider) -> Result<Value, ApiError> {
    let credentials = roster_mail::provider::open_credentials(&state.mail.key, tenant, &p.credentials).map_err(|e| {
        tracing::error!(error = %e, "stored email provider credentials cannot be opened (was the master key changed?)");
        ApiError::internal()
    })?;
    Ok(json!({
        "name": p.name,
        "enabled": p.enabled,
        "default_from_address": p.default_from_address,
        "credentials": roster_mail::provider::public_credentials(&credentials),
        "settings": p.settings,
    }))
}

/// An email provider as returned (credentials without the password).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EmailProviderSchema {
    /// Always `smtp`.
    name: String,
    enabled: bool,
    default_from_address: Option<String>,
    /// `smtp_host`, `smtp_port`, `smtp_user` (never `smtp_pass`).
    #[schema(value_type = Object)]
    credentials: Value,
    /// `tls`: `none`, `opportunistic`, `starttls` or `implicit` (default: implicit on port 465,
    /// opportunistic towards a loopback host, starttls otherwise).
    #[schema(value_type = Object)]
    settings: Value,
}

/// Body of `POST /emails/provider`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProviderBody {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub default_from_address: Option<String>,
    /// `{smtp_host, smtp_port, smtp_user?, smtp_pass?}`
    #[schema(value_type = Object)]
    pub credentials: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

/// Body of `PATCH /emails/provider`: given properties replace; `credentials` merges key by key (so the
/// password need not be sent again), `null` removing a key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProviderBody {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub default_from_address: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

/// The tenant's email provider.
#[utoipa::path(get, path = "/emails/provider", tag = "Emails",
    responses((status = 200, body = EmailProviderSchema), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:email_provider"])))]
pub async fn get_provider(State(state): State<AppState>, auth: Authorized<ReadEmailProvider>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let p = auth.tenant.store.email_provider().await?.ok_or_else(no_provider)?;
    Ok(Json(provider_json(&state, &auth.tenant.id, &p)?).into_response())
}

/// Configure the tenant's email provider (SMTP).
#[utoipa::path(post, path = "/emails/provider", tag = "Emails", request_body = CreateProviderBody,
    responses((status = 201, body = EmailProviderSchema), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["create:email_provider"])))]
pub async fn create_provider(
    State(state): State<AppState>,
    auth: Authorized<CreateEmailProvider>,
    ApiJson(body): ApiJson<CreateProviderBody>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let name = body.name.ok_or_else(|| invalid("Missing required property: name"))?;
    let credentials = object("credentials", body.credentials.ok_or_else(|| invalid("Missing required property: credentials"))?)?;
    let settings = object("settings", body.settings.unwrap_or_else(|| json!({})))?;
    roster_mail::provider::validate(&name, &credentials, &settings).map_err(invalid)?;
    let provider = EmailProvider {
        name,
        enabled: body.enabled.unwrap_or(true),
        default_from_address: parse_from_address(body.default_from_address)?,
        credentials: roster_mail::provider::seal_credentials(&state.mail.key, &auth.tenant.id, &credentials),
        settings: Value::Object(settings),
        updated_at: Timestamp::now(),
    };
    let ev = api_event(&auth, LogType::Sapi, "Create the email provider");
    match auth.tenant.store.put_email_provider(&provider, true, &ev).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(provider_json(&state, &auth.tenant.id, &provider)?)).into_response()),
        Err(StoreError::Conflict(_)) => {
            record_failure(&state, &auth, "Create the email provider").await;
            Err(ApiError::new(StatusCode::CONFLICT, "An email provider is already configured.", Some("email_provider_conflict")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Change the tenant's email provider.
#[utoipa::path(patch, path = "/emails/provider", tag = "Emails", request_body = UpdateProviderBody,
    responses((status = 200, body = EmailProviderSchema), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:email_provider"])))]
pub async fn update_provider(
    State(state): State<AppState>,
    auth: Authorized<UpdateEmailProvider>,
    ApiJson(body): ApiJson<UpdateProviderBody>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let store = &auth.tenant.store;
    let mut p = store.email_provider().await?.ok_or_else(no_provider)?;
    let mut credentials =
        roster_mail::provider::open_credentials(&state.mail.key, &auth.tenant.id, &p.credentials).map_err(|e| {
            tracing::error!(error = %e, "stored email provider credentials cannot be opened (was the master key changed?)");
            ApiError::internal()
        })?;
    if let Some(name) = body.name {
        p.name = name;
    }
    if let Some(enabled) = body.enabled {
        p.enabled = enabled;
    }
    if let Some(from) = body.default_from_address {
        p.default_from_address = parse_from_address(from)?;
    }
    if let Some(c) = body.credentials {
        for (k, v) in object("credentials", c)? {
            if v.is_null() {
                credentials.remove(&k);
            } else {
                credentials.insert(k, v);
            }
        }
    }
    let settings = match body.settings {
        Some(s) => object("settings", s)?,
        None => object("settings", p.settings.clone())?,
    };
    roster_mail::provider::validate(&p.name, &credentials, &settings).map_err(invalid)?;
    p.settings = Value::Object(settings);
    p.credentials = roster_mail::provider::seal_credentials(&state.mail.key, &auth.tenant.id, &credentials);
    p.updated_at = Timestamp::from_millis(Timestamp::now().millis().max(p.updated_at.millis() + 1));
    let ev = api_event(&auth, LogType::Sapi, "Update the email provider");
    store.put_email_provider(&p, false, &ev).await?;
    Ok(Json(provider_json(&state, &auth.tenant.id, &p)?).into_response())
}

/// Remove the tenant's email provider: its mail goes through the server's transport again.
#[utoipa::path(delete, path = "/emails/provider", tag = "Emails",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["delete:email_provider"])))]
pub async fn delete_provider(auth: Authorized<DeleteEmailProvider>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let ev = api_event(&auth, LogType::Sapi, "Delete the email provider");
    if auth.tenant.store.delete_email_provider(&ev).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(no_provider())
    }
}

// ---- templates ----

fn no_template() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "The template does not exist.", Some("inexistent_email_template"))
}

fn parse_template_name(raw: &str) -> Result<TemplateName, ApiError> {
    TemplateName::parse(raw).ok_or_else(|| {
        let names: Vec<&str> = TemplateName::ALL.iter().map(|t| t.as_str()).collect();
        invalid(format!("No enum match for: \"{raw}\" on property template (one of {})", names.join(", ")))
    })
}

/// Longest lifetime of a link in a mail (30 days).
const MAX_URL_LIFETIME_SECS: i64 = 30 * 86_400;
/// Largest template body accepted.
const MAX_BODY_BYTES: usize = 100 * 1024;

fn template_json(t: &EmailTemplate) -> Value {
    json!({
        "template": t.name,
        "body": t.body,
        "from": t.from,
        "subject": t.subject,
        "syntax": t.syntax,
        "resultUrl": t.result_url,
        "urlLifetimeInSeconds": t.url_lifetime_secs,
        "includeEmailInRedirect": t.include_email_in_redirect,
        "enabled": t.enabled,
    })
}

/// A tenant's email template, in Auth0's shape.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EmailTemplateSchema {
    /// `verify_email`, `reset_email`, `welcome_email`, `blocked_account`, `change_password`,
    /// `password_reset`, and Roster's `change_email_verify`, `change_email_notice`, `duplicate_signup`,
    /// `account_deleted`.
    template: String,
    /// Liquid HTML. Variables are HTML-escaped before they reach the body: do not add `| escape`.
    body: String,
    /// Liquid, e.g. `{{ friendly_name }} <support@example.com>`.
    from: String,
    subject: String,
    /// Always `liquid`.
    syntax: String,
    #[serde(rename = "resultUrl")]
    result_url: Option<String>,
    #[serde(rename = "urlLifetimeInSeconds")]
    url_lifetime_in_seconds: Option<i64>,
    #[serde(rename = "includeEmailInRedirect")]
    include_email_in_redirect: bool,
    enabled: bool,
}

/// A template body as sent: every property optional here, required ones checked per method.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    pub template: Option<String>,
    pub body: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub syntax: Option<String>,
    #[serde(rename = "resultUrl", default, deserialize_with = "nullable")]
    pub result_url: Option<Option<String>>,
    #[serde(rename = "urlLifetimeInSeconds", default, deserialize_with = "nullable")]
    pub url_lifetime_in_seconds: Option<Option<i64>>,
    #[serde(rename = "includeEmailInRedirect")]
    pub include_email_in_redirect: Option<bool>,
    pub enabled: Option<bool>,
}

impl TemplateBody {
    /// POST and PUT need every property Auth0 requires.
    fn require_all(&self) -> Result<(), ApiError> {
        let present = [
            ("template", self.template.is_some()),
            ("body", self.body.is_some()),
            ("from", self.from.is_some()),
            ("subject", self.subject.is_some()),
            ("syntax", self.syntax.is_some()),
            ("enabled", self.enabled.is_some()),
        ];
        match present.iter().find(|(_, ok)| !ok) {
            Some((name, _)) => Err(invalid(format!("Missing required property: {name}"))),
            None => Ok(()),
        }
    }

    /// Apply the given properties over `t`, checking each.
    fn apply(self, t: &mut EmailTemplate) -> Result<(), ApiError> {
        if let Some(body) = self.body {
            if body.len() > MAX_BODY_BYTES {
                return Err(invalid(format!("body is longer than {MAX_BODY_BYTES} bytes")));
            }
            t.body = body;
        }
        if let Some(from) = self.from {
            t.from = from;
        }
        if let Some(subject) = self.subject {
            t.subject = subject;
        }
        if let Some(syntax) = self.syntax {
            if syntax != "liquid" {
                return Err(invalid(format!("No enum match for: \"{syntax}\" on property syntax (one of liquid)")));
            }
            t.syntax = syntax;
        }
        if let Some(url) = self.result_url {
            t.result_url = match url {
                None => None,
                Some(u) if u.is_empty() => None,
                Some(u) => {
                    let ok = url::Url::parse(&u).is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host_str().is_some());
                    if !ok {
                        return Err(invalid("resultUrl must be an http(s) URL"));
                    }
                    Some(u)
                }
            };
        }
        if let Some(lifetime) = self.url_lifetime_in_seconds {
            t.url_lifetime_secs = match lifetime {
                None => None,
                Some(s) if (0..=MAX_URL_LIFETIME_SECS).contains(&s) => Some(s),
                Some(_) => return Err(invalid(format!("urlLifetimeInSeconds must be between 0 and {MAX_URL_LIFETIME_SECS}"))),
            };
        }
        if let Some(b) = self.include_email_in_redirect {
            t.include_email_in_redirect = b;
        }
        if let Some(b) = self.enabled {
            t.enabled = b;
        }
        Ok(())
    }
}

/// Parse, test-render and check the sender of a template before it is stored.
fn check_template(state: &AppState, name: TemplateName, t: &EmailTemplate) -> Result<(), ApiError> {
    let custom = CustomTemplate { body: t.body.clone(), subject: t.subject.clone(), from: t.from.clone() };
    roster_mail::check_custom(&state.mail.renderer, name, &custom)
        .map_err(|e| ApiError::bad_request(format!("The template is invalid: {e}")))
}

fn blank_template(name: TemplateName) -> EmailTemplate {
    EmailTemplate {
        name: name.as_str().to_owned(),
        body: String::new(),
        from: String::new(),
        subject: String::new(),
        syntax: "liquid".into(),
        result_url: None,
        url_lifetime_secs: None,
        include_email_in_redirect: true,
        enabled: true,
        updated_at: Timestamp::now(),
    }
}

/// `/t/{tenant}/api/v2/email-templates/{templateName}`
#[derive(Debug, Deserialize)]
pub struct TemplatePath {
    #[serde(rename = "templateName")]
    pub name: String,
}

/// Create a template (409 when the tenant already customized it).
#[utoipa::path(post, path = "/email-templates", tag = "Emails", request_body = TemplateBody,
    responses((status = 201, body = EmailTemplateSchema), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["create:email_templates"])))]
pub async fn create_template(
    State(state): State<AppState>,
    auth: Authorized<CreateEmailTemplates>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    body.require_all()?;
    let name = parse_template_name(body.template.as_deref().unwrap_or_default())?;
    let mut t = blank_template(name);
    body.apply(&mut t)?;
    check_template(&state, name, &t)?;
    let ev = api_event(&auth, LogType::Sapi, "Create an email template");
    match auth.tenant.store.put_email_template(&t, true, &ev).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(template_json(&t))).into_response()),
        Err(StoreError::Conflict(_)) => {
            record_failure(&state, &auth, "Create an email template").await;
            Err(ApiError::new(StatusCode::CONFLICT, "Template already exists.", Some("template_conflict")))
        }
        Err(e) => Err(e.into()),
    }
}

/// A tenant's customized template (404 while it uses the built-in default).
#[utoipa::path(get, path = "/email-templates/{templateName}", tag = "Emails",
    params(("templateName" = String, Path, description = "Template name")),
    responses((status = 200, body = EmailTemplateSchema), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:email_templates"])))]
pub async fn get_template(auth: Authorized<ReadEmailTemplates>, Path(path): Path<TemplatePath>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let name = TemplateName::parse(&path.name).ok_or_else(no_template)?;
    let t = auth.tenant.store.email_template(name.as_str()).await?.ok_or_else(no_template)?;
    Ok(Json(template_json(&t)).into_response())
}

/// Set a template wholesale (creates it when absent).
#[utoipa::path(put, path = "/email-templates/{templateName}", tag = "Emails",
    params(("templateName" = String, Path, description = "Template name")), request_body = TemplateBody,
    responses((status = 200, body = EmailTemplateSchema), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:email_templates"])))]
pub async fn put_template(
    State(state): State<AppState>,
    auth: Authorized<UpdateEmailTemplates>,
    Path(path): Path<TemplatePath>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let name = parse_template_name(&path.name)?;
    body.require_all()?;
    if body.template.as_deref() != Some(name.as_str()) {
        return Err(invalid("template must equal the name in the path"));
    }
    let mut t = blank_template(name);
    body.apply(&mut t)?;
    check_template(&state, name, &t)?;
    let ev = api_event(&auth, LogType::Sapi, "Set an email template");
    auth.tenant.store.put_email_template(&t, false, &ev).await?;
    Ok(Json(template_json(&t)).into_response())
}

/// Change some properties of a customized template.
#[utoipa::path(patch, path = "/email-templates/{templateName}", tag = "Emails",
    params(("templateName" = String, Path, description = "Template name")), request_body = TemplateBody,
    responses((status = 200, body = EmailTemplateSchema), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:email_templates"])))]
pub async fn patch_template(
    State(state): State<AppState>,
    auth: Authorized<UpdateEmailTemplates>,
    Path(path): Path<TemplatePath>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let name = TemplateName::parse(&path.name).ok_or_else(no_template)?;
    if body.template.as_deref().is_some_and(|t| t != name.as_str()) {
        return Err(invalid("template must equal the name in the path"));
    }
    let store = &auth.tenant.store;
    let mut t = store.email_template(name.as_str()).await?.ok_or_else(no_template)?;
    body.apply(&mut t)?;
    t.updated_at = Timestamp::now();
    check_template(&state, name, &t)?;
    let ev = api_event(&auth, LogType::Sapi, "Update an email template");
    store.put_email_template(&t, false, &ev).await?;
    Ok(Json(template_json(&t)).into_response())
}

// ---- outbox ----

const OUTBOX_STATUSES: &[&str] = &["pending", "delivered", "dead", "suppressed"];

fn outbox_json(r: &OutboxRecord) -> Value {
    json!({
        "id": r.message.id,
        "template": r.message.template,
        "recipient": r.message.recipient,
        "user_id": r.message.user_id.as_ref().map(UserId::as_str),
        "status": r.status,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "created_at": r.message.created_at,
        "next_attempt_at": (r.status == "pending").then_some(r.next_attempt_at),
        "delivered_at": r.delivered_at,
    })
}

/// One outbox row as listed.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OutboxSchema {
    /// `msg_…`; also the left part of the mail's `Message-ID`.
    id: String,
    template: String,
    recipient: String,
    user_id: Option<String>,
    /// `pending`, `delivered`, `dead` or `suppressed`.
    status: String,
    attempts: i64,
    /// The relay's last failure (server reply or cause), never a credential.
    last_error: Option<String>,
    created_at: String,
    next_attempt_at: Option<String>,
    delivered_at: Option<String>,
}

/// Query of `GET /emails/outbox`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// Only this user's mail.
    pub user_id: Option<String>,
    /// `pending`, `delivered`, `dead` or `suppressed`.
    pub status: Option<String>,
    /// At most this many rows, oldest first (1–100, default 50).
    pub per_page: Option<u32>,
}

/// The tenant's mail and what became of it (Roster extension).
#[utoipa::path(get, path = "/emails/outbox", tag = "Emails", params(OutboxQuery),
    responses((status = 200, body = Vec<OutboxSchema>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:email_provider", "read:users"])))]
pub async fn list_outbox(auth: Authorized<ReadOutbox>, ApiQuery(q): ApiQuery<OutboxQuery>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let user = q
        .user_id
        .map(|u| UserId::parse(&u).map_err(|_| ApiError::invalid_query("Query validation error: 'user_id' is not a user id.")))
        .transpose()?;
    if let Some(s) = q.status.as_deref().filter(|s| !OUTBOX_STATUSES.contains(s)) {
        return Err(ApiError::invalid_query(format!(
            "Query validation error: 'status' must be one of {} (got \"{s}\").",
            OUTBOX_STATUSES.join(", ")
        )));
    }
    let per_page = q.per_page.unwrap_or(50);
    if !(1..=100).contains(&per_page) {
        return Err(ApiError::invalid_query("Query validation error: 'per_page' must be between 1 and 100."));
    }
    let rows = auth.tenant.store.list_outbox(&OutboxFilter { user, status: q.status }, per_page).await?;
    Ok(Json(rows.iter().map(outbox_json).collect::<Vec<_>>()).into_response())
}

/// `/t/{tenant}/api/v2/emails/outbox/{id}/retry`
#[derive(Debug, Deserialize)]
pub struct OutboxPath {
    pub id: String,
}

/// Queue a dead (or suppressed) mail again, with a fresh attempt count (Roster extension).
#[utoipa::path(post, path = "/emails/outbox/{id}/retry", tag = "Emails",
    params(("id" = String, Path, description = "Outbox row id (`msg_…`)")),
    responses((status = 200, body = OutboxSchema), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:email_provider"])))]
pub async fn retry_outbox(auth: Authorized<RetryOutbox>, Path(path): Path<OutboxPath>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let store = &auth.tenant.store;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "The message does not exist.", Some("inexistent_message"));
    if path.id.len() > 64 {
        return Err(not_found());
    }
    let ev = api_event(&auth, LogType::Sapi, "Retry an email");
    match store.retry_outbox(&path.id, Timestamp::now(), &ev).await? {
        Some(row) => Ok(Json(outbox_json(&row)).into_response()),
        None => match store.outbox_row(&path.id).await? {
            None => Err(not_found()),
            Some(r) => Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Only dead or suppressed messages can be retried; this one is {}.", r.status),
                Some("invalid_message_state"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_bodies_are_checked() {
        let mut t = blank_template(TemplateName::VerifyEmail);
        let body = |v: Value| serde_json::from_value::<TemplateBody>(v).expect("parses");
        assert!(body(json!({"syntax": "handlebars"})).apply(&mut t).is_err());
        assert!(body(json!({"resultUrl": "javascript:alert(1)"})).apply(&mut t).is_err());
        assert!(body(json!({"urlLifetimeInSeconds": -1})).apply(&mut t).is_err());
        body(json!({"resultUrl": "https://app.example/done", "urlLifetimeInSeconds": 3600, "enabled": false}))
            .apply(&mut t)
            .expect("valid");
        assert_eq!(
            (t.result_url.as_deref(), t.url_lifetime_secs, t.enabled),
            (Some("https://app.example/done"), Some(3600), false)
        );
        body(json!({"resultUrl": null})).apply(&mut t).expect("null clears");
        assert_eq!(t.result_url, None);
        assert!(body(json!({"template": "verify_email"})).require_all().is_err());
    }
}

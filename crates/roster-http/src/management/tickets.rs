//! `/api/v2/tickets/password-change`, `/api/v2/tickets/email-verification`, and the verification-email
//! job (`/api/v2/jobs/verification-email`, `/api/v2/jobs/{id}`), in Auth0's shapes.
//!
//! A ticket is a one-time link the caller hands to the user however it likes; no mail is sent for it.
//! `result_url` must belong to one of the tenant's applications (the origin of a callback or allowed
//! logout URL), so a ticket cannot become an open redirect. The job queues a verification mail (ticket
//! and outbox row in one transaction); its status follows the mail's delivery. Only machine tokens
//! reach these routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roster_domain::log::LogType;
use roster_domain::{ConnectionId, Timestamp, UserId};
use roster_store::{Effects, Job, ticket_kind};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use utoipa::ToSchema;

use super::api_event;
use super::clients::{invalid, machine_only};
use super::users::ErrorBody;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authorized, CreateUserTickets, ReadJobs, UpdateUsers};
use crate::state::AppState;
use crate::tenant::TenantCtx;
use crate::tickets::{self, DEFAULT_TICKET_TTL_SECS, MAX_TICKET_TTL_SECS, TicketSpec};

/// Auth0's `identity` object (accepted; Roster users have one database identity).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct IdentityRef {
    user_id: Option<String>,
    provider: Option<String>,
    connection_id: Option<String>,
}

/// Body of `POST /tickets/password-change`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeTicketBody {
    /// Where the browser goes after the password is set (must belong to one of the tenant's applications).
    pub result_url: Option<String>,
    /// The user (xor `email` + `connection_id`).
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub organization_id: Option<String>,
    pub connection_id: Option<String>,
    pub email: Option<String>,
    /// Lifetime in seconds (0 or absent: 432000, 5 days; at most 30 days).
    pub ttl_sec: Option<i64>,
    /// Also mark the email verified when the password is set.
    pub mark_email_as_verified: Option<bool>,
    #[serde(rename = "includeEmailInRedirect")]
    pub include_email_in_redirect: Option<bool>,
    pub identity: Option<IdentityRef>,
}

/// Body of `POST /tickets/email-verification`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailVerificationTicketBody {
    pub result_url: Option<String>,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub organization_id: Option<String>,
    pub ttl_sec: Option<i64>,
    #[serde(rename = "includeEmailInRedirect")]
    pub include_email_in_redirect: Option<bool>,
    pub identity: Option<IdentityRef>,
}

/// `{"ticket": "https://…"}`
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TicketSchema {
    ticket: String,
}

fn parse_ttl(ttl: Option<i64>) -> Result<i64, ApiError> {
    match ttl {
        None | Some(0) => Ok(DEFAULT_TICKET_TTL_SECS),
        Some(s) if (1..=MAX_TICKET_TTL_SECS).contains(&s) => Ok(s),
        Some(_) => Err(invalid(format!("ttl_sec must be between 0 and {MAX_TICKET_TTL_SECS}"))),
    }
}

fn parse_user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|_| ApiError::not_found_user())
}

async fn checked_result_url(t: &TenantCtx, url: Option<String>, client: Option<&str>) -> Result<Option<String>, ApiError> {
    match url.filter(|u| !u.is_empty()) {
        None => Ok(None),
        Some(u) if tickets::result_url_allowed(t, &u, client).await? => Ok(Some(u)),
        Some(_) => {
            Err(invalid("result_url must be on the origin of a callback or allowed logout URL of the tenant's applications"))
        }
    }
}

async fn checked_client(t: &TenantCtx, client: Option<String>) -> Result<Option<String>, ApiError> {
    match client {
        None => Ok(None),
        Some(c) => match roster_domain::ClientId::parse(&c) {
            Ok(id) if t.store.client(&id).await?.is_some() => Ok(Some(c)),
            _ => Err(invalid("client_id does not name an application of this tenant")),
        },
    }
}

/// Create a password-change ticket: a one-time link to the hosted reset page.
#[utoipa::path(post, path = "/tickets/password-change", tag = "Tickets", request_body = PasswordChangeTicketBody,
    responses((status = 201, body = TicketSchema), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["create:user_tickets"])))]
pub async fn password_change(
    auth: Authorized<CreateUserTickets>,
    ApiJson(body): ApiJson<PasswordChangeTicketBody>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let t = &auth.tenant;
    let user = match (&body.user_id, &body.email, &body.connection_id) {
        (Some(id), None, None) => {
            Arc::unwrap_or_clone(t.store.user(&parse_user_id(id)?).await?.ok_or_else(ApiError::not_found_user)?)
        }
        (None, Some(email), Some(conn)) => {
            let conn = ConnectionId::parse(conn).map_err(|_| invalid("connection_id is not a connection id"))?;
            t.store.user_by_login(&conn, email).await?.map(|(u, _)| u).ok_or_else(ApiError::not_found_user)?
        }
        (Some(_), _, _) => return Err(invalid("user_id cannot be combined with email or connection_id")),
        _ => return Err(invalid("Give user_id, or email and connection_id")),
    };
    let client_id = checked_client(t, body.client_id).await?;
    let result_url = checked_result_url(t, body.result_url, client_id.as_deref()).await?;
    let issued = tickets::issue(
        t,
        &user,
        TicketSpec {
            kind: ticket_kind::PASSWORD_RESET,
            ttl_secs: parse_ttl(body.ttl_sec)?,
            result_url,
            client_id,
            mark_email_verified: body.mark_email_as_verified.unwrap_or(false),
            include_email_in_redirect: body.include_email_in_redirect.unwrap_or(true),
        },
    );
    let mut ev = api_event(&auth, LogType::Sapi, "Create a password change ticket");
    ev.user_id = Some(user.user_id.clone());
    t.store.append_effects(Effects::log(ev).with_ticket(issued.ticket)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "ticket": issued.url }))).into_response())
}

/// Create an email-verification ticket: a one-time link that verifies the user's current address.
#[utoipa::path(post, path = "/tickets/email-verification", tag = "Tickets", request_body = EmailVerificationTicketBody,
    responses((status = 201, body = TicketSchema), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["create:user_tickets"])))]
pub async fn email_verification(
    auth: Authorized<CreateUserTickets>,
    ApiJson(body): ApiJson<EmailVerificationTicketBody>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let t = &auth.tenant;
    let id = body.user_id.as_deref().ok_or_else(|| invalid("Missing required property: user_id"))?;
    let user = t.store.user(&parse_user_id(id)?).await?.ok_or_else(ApiError::not_found_user)?;
    if user.email.is_none() {
        return Err(invalid("The user has no email address"));
    }
    let client_id = checked_client(t, body.client_id).await?;
    let result_url = checked_result_url(t, body.result_url, client_id.as_deref()).await?;
    let issued = tickets::issue(
        t,
        &user,
        TicketSpec {
            kind: ticket_kind::EMAIL_VERIFICATION,
            ttl_secs: parse_ttl(body.ttl_sec)?,
            result_url,
            client_id,
            mark_email_verified: true,
            include_email_in_redirect: body.include_email_in_redirect.unwrap_or(true),
        },
    );
    let mut ev = api_event(&auth, LogType::Sapi, "Create an email verification ticket");
    ev.user_id = Some(user.user_id.clone());
    t.store.append_effects(Effects::log(ev).with_ticket(issued.ticket)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "ticket": issued.url }))).into_response())
}

/// Body of `POST /jobs/verification-email`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationJobBody {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub identity: Option<IdentityRef>,
    pub organization_id: Option<String>,
}

/// A job, in Auth0's shape.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobSchema {
    /// `job_…`
    id: String,
    /// `verification_email`
    #[serde(rename = "type")]
    kind: String,
    /// `pending`, `completed` or `failed` (the delivery of the job's mail).
    status: String,
    created_at: String,
}

fn job_json(job: &Job, status: &str) -> Value {
    json!({ "id": job.id, "type": job.kind, "status": status, "created_at": job.created_at })
}

/// Send the user a verification email (a new ticket; the mail is queued with the job).
#[utoipa::path(post, path = "/jobs/verification-email", tag = "Jobs", request_body = VerificationJobBody,
    responses((status = 201, body = JobSchema), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:users"])))]
pub async fn verification_email_job(
    State(state): State<AppState>,
    auth: Authorized<UpdateUsers>,
    ApiJson(body): ApiJson<VerificationJobBody>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let t = &auth.tenant;
    let id = body.user_id.as_deref().ok_or_else(|| invalid("Missing required property: user_id"))?;
    let user = t.store.user(&parse_user_id(id)?).await?.ok_or_else(ApiError::not_found_user)?;
    if user.email_verified {
        return Err(ApiError::bad_request("The user's email address is already verified."));
    }
    let client_id = checked_client(t, body.client_id).await?;
    let connection = t.store.connection(&user.connection_id).await?.map(|c| c.name).unwrap_or_default();
    let Some((ticket, mail)) = tickets::verification(&state, t, &user, client_id.as_deref(), &connection).await? else {
        return Err(invalid("The user has no email address"));
    };
    let job = Job {
        id: format!("job_{}", roster_domain::secret::random_alphanumeric(16)),
        kind: "verification_email".into(),
        status: "pending".into(),
        user_id: Some(user.user_id.clone()),
        outbox_id: Some(mail.id.clone()),
        details: json!({ "client_id": client_id }),
        created_at: Timestamp::now(),
    };
    let mut ev = api_event(&auth, LogType::Svr, "Verification email request");
    ev.user_id = Some(user.user_id.clone());
    t.store.create_job(&job, Effects::log(ev).with_ticket(ticket).with_mail(mail)).await?;
    Ok((StatusCode::CREATED, Json(job_json(&job, "pending"))).into_response())
}

/// `/t/{tenant}/api/v2/jobs/{id}`
#[derive(Debug, Deserialize)]
pub struct JobPath {
    pub id: String,
}

/// A job and its status (for a verification email: pending until the mail is delivered).
#[utoipa::path(get, path = "/jobs/{id}", tag = "Jobs", params(("id" = String, Path, description = "Job id (`job_…`)")),
    responses((status = 200, body = JobSchema), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:users", "create:users", "update:users"])))]
pub async fn get_job(auth: Authorized<ReadJobs>, Path(path): Path<JobPath>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "The job does not exist.", Some("inexistent_job"));
    if path.id.len() > 64 {
        return Err(not_found());
    }
    let job = auth.tenant.store.job(&path.id).await?.ok_or_else(not_found)?;
    let status = match &job.outbox_id {
        Some(m) => match auth.tenant.store.outbox_row(m).await? {
            Some(r) if r.status == "pending" => "pending",
            Some(r) if r.status == "dead" => "failed",
            // Delivered, suppressed by the tenant, or gone with its user: nothing left to do.
            _ => "completed",
        },
        None => job.status.as_str(),
    };
    Ok(Json(job_json(&job, status)).into_response())
}

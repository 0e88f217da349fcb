//! `/api/v2/users` and `/api/v2/users-by-email`: Auth0's user management semantics.
//!
//! Each handler's authorization is in its signature (`Authorized<ReadUsers>` …); object-level rules
//! (a user token reaches only its own user, and only `user_metadata`) are checked before any change.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roster_domain::log::LogType;
use roster_domain::metadata::{Metadata, MetadataKind};
use roster_domain::query::{Page, PagingError, Sort, UserQuery};
use roster_domain::user::{NewUser, User, UserPatch, bounded, parse_phone, parse_picture, parse_username};
use roster_domain::{Email, Timestamp, UserId};
use roster_store::Effects;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::api_event;
use super::view::{Projection, UserView, default_picture, user_body, user_json};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Authorized, CreateUsers, DeleteUsers, Principal, ReadUsers, Subject, UpdateUsers};
use crate::state::AppState;
use crate::{passwords, tickets};

/// Query of `GET /users`. Values are taken as strings and validated here so every mistake gets a
/// precise 400 instead of a generic parse failure.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersParams {
    /// Page index, 0-based.
    pub page: Option<String>,
    /// Results per page, 0–100 (default 50).
    pub per_page: Option<String>,
    /// `true` wraps the page as `{start, limit, length, total, users}`.
    pub include_totals: Option<String>,
    /// `field:1` or `field:-1`.
    pub sort: Option<String>,
    /// Comma-separated fields to include (or exclude with `include_fields=false`).
    pub fields: Option<String>,
    pub include_fields: Option<String>,
    /// Search query: `field:value` or `field:"value"` terms joined with AND.
    pub q: Option<String>,
    /// Accepted for compatibility (`v3`); there is one search engine.
    pub search_engine: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FieldsParams {
    pub fields: Option<String>,
    pub include_fields: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ByEmailParams {
    /// Exact, case-sensitive address.
    pub email: Option<String>,
    pub fields: Option<String>,
    pub include_fields: Option<String>,
}

/// `/t/{tenant}/api/v2/users/{id}`
#[derive(Debug, Deserialize)]
pub struct UserPath {
    #[allow(dead_code)]
    tenant: String,
    id: String,
}

fn parse_bool(name: &str, v: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match v {
        None | Some("") => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(ApiError::invalid_query(format!("Query validation error: '{name}' must be true or false."))),
    }
}

fn parse_u32(name: &str, v: Option<&str>) -> Result<Option<u32>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .map_err(|_| ApiError::invalid_query(format!("Query validation error: '{name}' must be a non-negative integer.")))
        })
        .transpose()
}

fn parse_user_id(raw: &str) -> Result<UserId, ApiError> {
    // An id that cannot exist is reported as a missing user, as Auth0 does.
    UserId::parse(raw).map_err(|_| ApiError::not_found_user())
}

fn ensure_own(p: &Principal, id: &UserId) -> Result<(), ApiError> {
    if p.may_access_user(id) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "You may only access your own user.", Some("insufficient_scope")))
    }
}

/// Machine clients need `read:users` to list; user tokens cannot list.
fn require_scope(p: &Principal, scope: &'static str) -> Result<(), ApiError> {
    match p.subject {
        Subject::Client(_) if p.scopes.contains(scope) => Ok(()),
        _ => Err(ApiError::insufficient_scope(&[scope])),
    }
}

/// List or search users.
#[utoipa::path(get, path = "/users", tag = "Users", params(ListUsersParams),
    responses((status = 200, description = "A page of users (an array, or an object with totals)", body = [UserSchema]),
              (status = 400, description = "Invalid paging or query", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = ["read:users"])))]
pub async fn list_users(auth: Authorized<ReadUsers>, ApiQuery(params): ApiQuery<ListUsersParams>) -> Result<Response, ApiError> {
    require_scope(&auth, "read:users")?;
    let page = Page::new(parse_u32("page", params.page.as_deref())?, parse_u32("per_page", params.per_page.as_deref())?)
        .map_err(|e| match e {
            PagingError::PerPage => ApiError::invalid_query("Query validation error: 'per_page' must be at most 100."),
            PagingError::Window => ApiError::new(
                StatusCode::BAD_REQUEST,
                "You can only page through the first 1000 records. See https://auth0.com/docs/users/search/v3/view-search-results-by-page#limitation",
                Some("invalid_paging"),
            ),
        })?;
    let with_totals = parse_bool("include_totals", params.include_totals.as_deref(), false)?;
    let sort = match params.sort.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Sort::parse(s).map_err(|e| ApiError::invalid_query(e.message()))?,
        None => Sort::default(),
    };
    let query = UserQuery::parse(params.q.as_deref().unwrap_or("")).map_err(|e| ApiError::invalid_query(e.message()))?;
    let projection =
        Projection::new(params.fields.as_deref(), parse_bool("include_fields", params.include_fields.as_deref(), true)?);
    let list = auth.tenant.store.list_users(&query, sort, page, with_totals).await?;
    let users: Vec<Value> =
        if projection.is_identity() { Vec::new() } else { list.users.iter().map(|u| projection.apply(user_json(u))).collect() };
    let views: Vec<UserView<'_>> = list.users.iter().map(UserView).collect();
    let length = list.users.len();
    let body = match (with_totals, projection.is_identity()) {
        (true, true) => {
            json!({"start": page.offset(), "limit": page.per_page, "length": length, "total": list.total.unwrap_or(0), "users": views})
        }
        (true, false) => {
            json!({"start": page.offset(), "limit": page.per_page, "length": length, "total": list.total.unwrap_or(0), "users": users})
        }
        (false, true) => return Ok(Json(views).into_response()),
        (false, false) => Value::Array(users),
    };
    Ok(Json(body).into_response())
}

/// Get one user.
#[utoipa::path(get, path = "/users/{id}", tag = "Users", params(("id" = String, Path, description = "user_id"), FieldsParams),
    responses((status = 200, body = UserSchema), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:users", "read:current_user"])))]
pub async fn get_user(
    State(state): State<AppState>,
    auth: Authorized<ReadUsers>,
    Path(path): Path<UserPath>,
    ApiQuery(params): ApiQuery<FieldsParams>,
) -> Result<Response, ApiError> {
    let id = parse_user_id(&path.id)?;
    ensure_own(&auth, &id)?;
    let projection =
        Projection::new(params.fields.as_deref(), parse_bool("include_fields", params.include_fields.as_deref(), true)?);
    let user = auth.tenant.store.user(&id).await?.ok_or_else(ApiError::not_found_user)?;
    user_body(&user, &projection, &state.rendered_users)
}

/// Body of `POST /users`. Unknown properties are refused, as Auth0 does.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    /// Name of the database connection (e.g. `Username-Password-Authentication`).
    pub connection: Option<String>,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub user_metadata: Option<Value>,
    pub app_metadata: Option<Value>,
    pub blocked: Option<bool>,
    pub email_verified: Option<bool>,
    pub phone_verified: Option<bool>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    /// Becomes `auth0|{user_id}`; generated (`auth0|` + 24 hex) when absent.
    pub user_id: Option<String>,
    pub password: Option<String>,
    pub verify_email: Option<bool>,
    pub verify_phone_number: Option<bool>,
    pub username: Option<String>,
    pub client_id: Option<String>,
}

fn missing(prop: &str) -> ApiError {
    ApiError::bad_request(format!("Payload validation error: 'Missing required property: {prop}'."))
}

/// Create a user in a database connection.
#[utoipa::path(post, path = "/users", tag = "Users", request_body = CreateUserBody,
    responses((status = 201, body = UserSchema), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["create:users"])))]
pub async fn create_user(
    State(state): State<AppState>,
    auth: Authorized<CreateUsers>,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<Response, ApiError> {
    let limits = state.cfg.metadata_limits;
    let tenant = &auth.tenant;
    let conn_name = body.connection.as_deref().ok_or_else(|| missing("connection"))?;
    let connection =
        tenant.store.connection_by_name(conn_name).await?.ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, "The connection does not exist.", Some("inexistent_connection"))
        })?;
    if connection.strategy != "auth0" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Users can only be created in database connections.",
            Some("operation_not_supported"),
        ));
    }
    let email = Email::parse(body.email.as_deref().ok_or_else(|| missing("email"))?)?;
    let password_raw = body.password.ok_or_else(|| missing("password"))?;
    let user_id = match body.user_id.as_deref() {
        Some(id) => UserId::database_with(id)?,
        None => UserId::new_database(),
    };
    let opt = |field: &str, v: Option<String>, max: usize| v.map(|s| bounded(field, s, max)).transpose();
    let user_metadata = body.user_metadata.map(|v| Metadata::parse(MetadataKind::User, v, limits)).transpose()?;
    let app_metadata = body.app_metadata.map(|v| Metadata::parse(MetadataKind::App, v, limits)).transpose()?;
    let mut user = User::new_database(
        user_id,
        connection.id.clone(),
        &connection.name,
        email.clone(),
        default_picture(&email),
        Timestamp::now(),
    );
    user.email_verified = body.email_verified.unwrap_or(false);
    user.username = body.username.as_deref().map(parse_username).transpose()?;
    user.phone_number = body.phone_number.as_deref().map(parse_phone).transpose()?;
    user.phone_verified = body.phone_verified.unwrap_or(false);
    if let Some(name) = opt("name", body.name, 300)? {
        user.name = Some(name);
    }
    user.given_name = opt("given_name", body.given_name, 150)?;
    user.family_name = opt("family_name", body.family_name, 150)?;
    if let Some(nickname) = opt("nickname", body.nickname, 300)? {
        user.nickname = Some(nickname);
    }
    if let Some(p) = body.picture {
        user.picture = Some(parse_picture(&p)?);
    }
    user.user_metadata = user_metadata.unwrap_or_default();
    user.app_metadata = app_metadata.unwrap_or_default();
    user.blocked = body.blocked.unwrap_or(false);
    let password =
        passwords::check_new(&state, tenant, &connection, &user, password_raw, false).await.map_err(password_refused)?;
    // Hash before opening any transaction: the hash is the slow part and must not hold a lock.
    let password_hash = state.hasher.hash(password).await?;
    let mut ev = api_event(&auth, LogType::Sapi, "Create a User");
    ev.user_id = Some(user.user_id.clone());
    ev.user_name = user.email.as_ref().map(|e| e.to_string());
    ev.connection = Some(connection.name.clone());
    ev.connection_id = Some(connection.id.clone());
    let mut effects = Effects::log(ev).remember_password(user.user_id.clone(), password_hash.clone());
    // Auth0: a verification mail unless the address is already verified or the caller says not to.
    if !user.email_verified
        && body.verify_email != Some(false)
        && let Some((ticket, mail)) = tickets::verification(&state, tenant, &user, None, &connection.name).await?
    {
        effects = effects.with_ticket(ticket).with_mail(mail);
    }
    let new = NewUser { user, password_hash: Some(password_hash) };
    match tenant.store.create_user(&new, effects).await {
        Ok(()) => {}
        Err(roster_store::StoreError::Conflict(kind)) => {
            record_failure(&state, &auth, "Create a User").await;
            return Err(match kind {
                roster_store::ConflictKind::Username => {
                    ApiError::new(StatusCode::BAD_REQUEST, "The username provided is in use already.", Some("auth0_idp_error"))
                }
                _ => ApiError::new(StatusCode::CONFLICT, "The user already exists.", Some("auth0_idp_error")),
            });
        }
        Err(e) => return Err(e.into()),
    }
    Ok((StatusCode::CREATED, Json(UserView(&new.user))).into_response())
}

/// A refused new password, as the Management API reports it.
fn password_refused(r: passwords::Refusal) -> ApiError {
    match r {
        passwords::Refusal::Unavailable(e) => e.into(),
        passwords::Refusal::Store(e) => e.into(),
        passwords::Refusal::Policy { body, .. } => {
            let name = body["name"].as_str().unwrap_or("PasswordStrengthError").to_owned();
            let message = body["message"].as_str().unwrap_or("Password is too weak").to_owned();
            ApiError::new(StatusCode::BAD_REQUEST, format!("{name}: {message}"), Some("invalid_password"))
        }
        passwords::Refusal::TooLong => ApiError::new(StatusCode::BAD_REQUEST, r.summary(), Some("invalid_password")),
    }
}

/// `fapi`: a Management write that was refused after authorization (conflict, validation).
async fn record_failure(state: &AppState, p: &Principal, what: &str) {
    let ev = api_event(p, LogType::Fapi, what);
    if let Err(e) = state.logs.record(p.tenant.id.clone(), ev).await {
        tracing::warn!(error = ?e, "could not record a failed API operation");
    }
}

/// Which fields the caller may change, by scope and subject.
fn check_patch_fields(p: &Principal, fields: &[&str]) -> Result<(), ApiError> {
    match &p.subject {
        Subject::Client(_) if p.scopes.contains("update:users") => Ok(()),
        Subject::Client(_) => {
            let metadata_only = fields.iter().all(|f| matches!(*f, "app_metadata" | "user_metadata"));
            if metadata_only && p.scopes.contains("update:users_app_metadata") {
                Ok(())
            } else {
                Err(ApiError::insufficient_scope(&["update:users"]))
            }
        }
        Subject::User(_) => {
            let mut refused: Vec<&str> = fields.iter().copied().filter(|f| *f != "user_metadata").collect();
            if refused.is_empty() {
                if p.scopes.contains_any(&[
                    "update:current_user_metadata",
                    "create:current_user_metadata",
                    "delete:current_user_metadata",
                ]) {
                    return Ok(());
                }
                return Err(ApiError::insufficient_scope(&["update:current_user_metadata"]));
            }
            refused.sort_unstable();
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("You cannot update the following fields: {}", refused.join(", ")),
                Some("insufficient_scope"),
            ))
        }
    }
}

/// Update a user: root attributes replace, metadata merges one level deep (`null` deletes a key,
/// `{}` empties the object).
#[utoipa::path(patch, path = "/users/{id}", tag = "Users", params(("id" = String, Path, description = "user_id")),
    request_body = PatchUserSchema,
    responses((status = 200, body = UserSchema), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:users", "update:users_app_metadata", "update:current_user_metadata"])))]
pub async fn update_user(
    State(state): State<AppState>,
    auth: Authorized<UpdateUsers>,
    Path(path): Path<UserPath>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let id = parse_user_id(&path.id)?;
    ensure_own(&auth, &id)?;
    let limits = state.cfg.metadata_limits;
    if body.is_empty() {
        return Err(ApiError::bad_request("Payload validation error: 'Too few properties defined (0), minimum 1'."));
    }
    let mut patch = UserPatch::parse(body, limits)?;
    check_patch_fields(&auth, &patch.fields())?;
    let t = &auth.tenant;
    if let (Subject::User(_), Some(meta)) = (&auth.subject, &patch.user_metadata) {
        // The tenant's profile schema marks some user_metadata keys read-only for users: a user's own
        // token cannot write them here either (undeclared keys stay writable, as in Auth0).
        let settings = crate::account::settings(t).await?;
        let mut locked: Vec<&str> = meta
            .as_map()
            .keys()
            .filter(|k| settings.account.profile_schema.property(k).is_some_and(|p| p.read_only))
            .map(String::as_str)
            .collect();
        if !locked.is_empty() {
            locked.sort_unstable();
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("You cannot update the following user_metadata keys: {}", locked.join(", ")),
                Some("insufficient_scope"),
            ));
        }
    }
    let mut ev = api_event(&auth, LogType::Sapi, "Update a User");
    ev.user_id = Some(id.clone());
    ev.details = json!({ "fields": patch.fields() });
    let mut effects = Effects::log(ev);
    let new_email = patch.email.clone().filter(|_| patch.verify_email == Some(true));
    // A new password or a verification mail needs the user as stored (policy context, connection).
    let current = if patch.password.is_some() || new_email.is_some() {
        Some(t.store.user(&id).await?.ok_or_else(ApiError::not_found_user)?)
    } else {
        None
    };
    let password_hash = match (patch.password.take(), &current) {
        (Some(raw), Some(user)) => {
            let connection = t.store.connection(&user.connection_id).await?.ok_or_else(ApiError::not_found_user)?;
            let pw = passwords::check_new(&state, t, &connection, user, raw, true).await.map_err(password_refused)?;
            // Keep the marker so `apply` records `last_password_reset`.
            patch.password = Some(String::new());
            let hash = state.hasher.hash(pw).await?;
            let mut scp = api_event(&auth, LogType::Scp, "Password changed through the Management API");
            scp.user_id = Some(id.clone());
            let after = crate::pages::reset::after_password_change(&state, t, user, &connection.name, hash.clone(), None, scp);
            effects.logs.extend(after.logs);
            effects.outbox.extend(after.outbox);
            effects.revocations.extend(after.revocations);
            effects.password_history.extend(after.password_history);
            Some(hash)
        }
        _ => None,
    };
    if let (Some(email), Some(user)) = (new_email, &current) {
        // The mail goes to the new address and the ticket verifies that address only.
        let mut draft = User::clone(user);
        draft.email = Some(email);
        let connection = t.store.connection(&user.connection_id).await?.map(|c| c.name).unwrap_or_default();
        if let Some((ticket, mail)) = tickets::verification(&state, t, &draft, None, &connection).await? {
            effects = effects.with_ticket(ticket).with_mail(mail);
        }
    }
    let now = Timestamp::now();
    let password_changed = password_hash.is_some();
    let result =
        t.store.update_user(&id, Box::new(move |u: &mut User| u.apply(&patch, limits, now)), password_hash, effects).await;
    match result {
        Ok(Some(user)) => {
            if password_changed {
                // The change lifted the user's blocks in the store; this node forgets them too.
                crate::attack::forget_blocks(t);
            }
            Ok(Json(UserView(&user)).into_response())
        }
        Ok(None) => Err(ApiError::not_found_user()),
        Err(roster_store::StoreError::Conflict(kind)) => {
            record_failure(&state, &auth, "Update a User").await;
            Err(match kind {
                roster_store::ConflictKind::Username => {
                    ApiError::new(StatusCode::BAD_REQUEST, "The username provided is in use already.", Some("auth0_idp_error"))
                }
                _ => ApiError::new(StatusCode::BAD_REQUEST, "The specified new email already exists", Some("auth0_idp_error")),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Delete a user and everything attached to it.
#[utoipa::path(delete, path = "/users/{id}", tag = "Users", params(("id" = String, Path, description = "user_id")),
    responses((status = 204, description = "Deleted (or did not exist)"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["delete:users"])))]
pub async fn delete_user(auth: Authorized<DeleteUsers>, Path(path): Path<UserPath>) -> Result<StatusCode, ApiError> {
    let Ok(id) = UserId::parse(&path.id) else {
        return Ok(StatusCode::NO_CONTENT);
    };
    ensure_own(&auth, &id)?;
    let mut ev = api_event(&auth, LogType::Sdu, "Deleted User");
    ev.user_id = Some(id.clone());
    auth.tenant.store.delete_user(&id, &ev).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Users with exactly this address (case-sensitive, immediately consistent).
#[utoipa::path(get, path = "/users-by-email", tag = "Users", params(ByEmailParams),
    responses((status = 200, body = [UserSchema]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:users"])))]
pub async fn users_by_email(
    auth: Authorized<ReadUsers>,
    ApiQuery(params): ApiQuery<ByEmailParams>,
) -> Result<Response, ApiError> {
    require_scope(&auth, "read:users")?;
    let email = params
        .email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::invalid_query("Query validation error: 'Missing required property: email'."))?;
    let projection =
        Projection::new(params.fields.as_deref(), parse_bool("include_fields", params.include_fields.as_deref(), true)?);
    let users = auth.tenant.store.users_by_email(&email).await?;
    Ok(Json(users.iter().map(|u| projection.apply(user_json(u))).collect::<Vec<_>>()).into_response())
}

// ---- OpenAPI-only schemas (the handlers parse with the domain rules above) ----

/// An Auth0 Management API error.
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    #[schema(example = 404)]
    #[serde(rename = "statusCode")]
    status_code: u16,
    #[schema(example = "Not Found")]
    error: String,
    #[schema(example = "The user does not exist.")]
    message: String,
    #[schema(example = "inexistent_user")]
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)]
pub struct IdentitySchema {
    connection: String,
    provider: String,
    user_id: String,
    #[serde(rename = "isSocial")]
    is_social: bool,
}

/// A user (Auth0's normalized profile).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserSchema {
    #[schema(example = "auth0|65f0c0ffee0123456789abcd")]
    user_id: String,
    email: Option<String>,
    email_verified: bool,
    username: Option<String>,
    phone_number: Option<String>,
    phone_verified: Option<bool>,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    nickname: Option<String>,
    picture: Option<String>,
    identities: Vec<IdentitySchema>,
    user_metadata: Map<String, Value>,
    app_metadata: Map<String, Value>,
    blocked: bool,
    created_at: String,
    updated_at: String,
    last_login: Option<String>,
    last_ip: Option<String>,
    last_password_reset: Option<String>,
    logins_count: i64,
}

/// Body of `PATCH /users/{id}`: every property optional; `null` unsets a root attribute.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PatchUserSchema {
    blocked: Option<bool>,
    email_verified: Option<bool>,
    email: Option<String>,
    phone_number: Option<String>,
    phone_verified: Option<bool>,
    user_metadata: Option<Map<String, Value>>,
    app_metadata: Option<Map<String, Value>>,
    given_name: Option<String>,
    family_name: Option<String>,
    name: Option<String>,
    nickname: Option<String>,
    picture: Option<String>,
    verify_email: Option<bool>,
    password: Option<String>,
    connection: Option<String>,
    client_id: Option<String>,
    username: Option<String>,
}

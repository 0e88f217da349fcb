//! `POST /t/{tenant}/dbconnections/signup`.
//!
//! Secure by default against account enumeration: when the address is already registered, the answer
//! is the same as for a new signup and the owner receives a "someone tried to sign up with your address"
//! mail; a connection can opt into Auth0's behaviour (`prevent_signup_enumeration: false` →
//! 400 `invalid_signup`). Both paths hash the password, so they also take the same time. The
//! verification mail is written to the outbox in the same transaction as the user.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use roster_domain::log::{LogEvent, LogType};
use roster_domain::metadata::{Metadata, MetadataKind};
use roster_domain::user::{NewUser, User, bounded, parse_phone, parse_picture, parse_username};
use roster_domain::{ClientId, Email, Timestamp, UserId};
use roster_store::{ConflictKind, Effects, OutboxMessage, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::token::user_agent;
use crate::extract::{AuthTenant, ClientIp};
use crate::state::AppState;

/// Auth0's signup error body: `{"name","code","description","statusCode"}` (plus `message`/`policy`
/// for password policy failures).
pub struct SignupError {
    status: StatusCode,
    body: Value,
}

impl SignupError {
    pub(crate) fn new(status: StatusCode, name: &str, code: &str, description: impl Into<String>) -> Self {
        let description = description.into();
        Self { status, body: json!({"name": name, "code": code, "description": description, "statusCode": status.as_u16()}) }
    }
    pub(crate) fn bad(code: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestError", code, description)
    }
    fn invalid_signup() -> Self {
        Self::bad("invalid_signup", "Invalid sign up")
    }
    fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "internal_error", "Internal error")
    }
    pub(crate) fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsError",
            "too_many_requests",
            "Too many requests, try again later.",
        )
    }
}

impl IntoResponse for SignupError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<StoreError> for SignupError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = ?e, "storage error during signup");
        Self::internal()
    }
}

impl From<roster_auth::HashError> for SignupError {
    fn from(e: roster_auth::HashError) -> Self {
        match e {
            roster_auth::HashError::Overloaded => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsError",
                "too_many_requests",
                "Too many requests, try again shortly.",
            ),
            _ => Self::internal(),
        }
    }
}

#[derive(Default, Deserialize, ToSchema)]
pub struct SignupBody {
    pub client_id: Option<String>,
    pub email: Option<String>,
    #[schema(format = Password)]
    pub password: Option<String>,
    pub connection: Option<String>,
    pub username: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    pub phone_number: Option<String>,
    pub user_metadata: Option<Value>,
}

/// Auth0's signup limits on `user_metadata`: ≤ 10 properties, names ≤ 100 characters, string values ≤ 500.
fn signup_metadata(v: Option<Value>, limits: roster_domain::MetadataLimits) -> Result<Metadata, SignupError> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Metadata::empty()) };
    let Value::Object(m) = &v else { return Err(SignupError::bad("invalid_body", "user_metadata must be an object")) };
    let ok =
        m.len() <= 10 && m.iter().all(|(k, v)| k.chars().count() <= 100 && v.as_str().is_some_and(|s| s.chars().count() <= 500));
    if !ok {
        return Err(SignupError::bad(
            "invalid_body",
            "user_metadata accepts at most 10 string properties (names up to 100 characters, values up to 500)",
        ));
    }
    Metadata::parse(MetadataKind::User, v, limits).map_err(|e| SignupError::bad("invalid_body", e.message()))
}

fn option_bool(options: &Value, key: &str, default: bool) -> bool {
    options.get(key).and_then(Value::as_bool).unwrap_or(default)
}

/// The public part of a new user, as Auth0's signup answers.
fn signup_response(id_hex: &str, u: &User) -> Value {
    let mut m = Map::new();
    m.insert("_id".into(), json!(id_hex));
    m.insert("email_verified".into(), json!(false));
    if let Some(e) = &u.email {
        m.insert("email".into(), json!(e));
    }
    for (k, v) in [
        ("username", &u.username),
        ("given_name", &u.given_name),
        ("family_name", &u.family_name),
        ("name", &u.name),
        ("nickname", &u.nickname),
        ("picture", &u.picture),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if !u.user_metadata.as_map().is_empty() {
        m.insert("user_metadata".into(), Value::Object(u.user_metadata.as_map().clone()));
    }
    Value::Object(m)
}

/// Create a database user (self-service).
#[utoipa::path(post, path = "/dbconnections/signup", tag = "Authentication", request_body = SignupBody,
    responses((status = 200, description = "The new user (the same answer when the address is taken)"),
              (status = 400, description = "invalid_signup / invalid_password / bad input")))]
pub async fn signup(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    ip: ClientIp,
    headers: HeaderMap,
    Json(body): Json<SignupBody>,
) -> Result<Response, SignupError> {
    let body = register(&state, &tenant, ip.to_string_opt(), user_agent(&headers), body).await?;
    Ok(Json(body).into_response())
}

impl SignupError {
    /// A sentence fit for a hosted page.
    pub fn explain(&self) -> String {
        if self.body["code"] == "invalid_password" {
            return format!("Password is too weak: {}", self.body["policy"].as_str().unwrap_or("").trim_start_matches("* "));
        }
        self.body["description"].as_str().unwrap_or("Sign up failed").to_owned()
    }
}

/// Create an account (the API and the hosted signup page share this). Returns Auth0's response body,
/// identical in shape for a new address and (in the default protected mode) a registered one.
pub async fn register(
    state: &AppState,
    tenant: &crate::tenant::TenantCtx,
    ip: Option<String>,
    user_agent: Option<String>,
    body: SignupBody,
) -> Result<Value, SignupError> {
    let limits = state.cfg.metadata_limits;
    let client = match body.client_id.as_deref().map(ClientId::parse) {
        Some(Ok(id)) => tenant.client(&id).await?,
        _ => None,
    }
    .ok_or_else(|| SignupError::bad("invalid_request", "Unknown client"))?;
    let conn_name = body
        .connection
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| SignupError::bad("invalid_body", "Missing required property: connection"))?;
    let connection = tenant
        .store
        .connection_by_name(conn_name)
        .await?
        .filter(|c| c.strategy == "auth0")
        .ok_or_else(|| SignupError::bad("invalid_connection", "The connection does not exist"))?;
    if option_bool(&connection.options, "disable_signup", false) {
        return Err(SignupError::new(
            StatusCode::FORBIDDEN,
            "ForbiddenError",
            "operation_not_allowed",
            "Signups are disabled for this connection",
        ));
    }
    let email =
        Email::parse(body.email.as_deref().ok_or_else(|| SignupError::bad("invalid_body", "Missing required property: email"))?)
            .map_err(|_| SignupError::bad("invalid_body", "Invalid email address"))?;
    let username = match body.username.as_deref() {
        Some(u) => Some(parse_username(u).map_err(|e| SignupError::bad("invalid_body", e.message()))?),
        None if option_bool(&connection.options, "requires_username", false) => {
            return Err(SignupError::bad("invalid_body", "Missing required property: username"));
        }
        None => None,
    };
    let raw_password = body.password.ok_or_else(|| SignupError::bad("invalid_body", "Missing required property: password"))?;
    let text = |field: &str, v: Option<String>, max: usize| {
        v.map(|s| bounded(field, s, max)).transpose().map_err(|e| SignupError::bad("invalid_body", e.message()))
    };
    let given_name = text("given_name", body.given_name, 150)?;
    let family_name = text("family_name", body.family_name, 150)?;
    let name = text("name", body.name, 300)?;
    let nickname = text("nickname", body.nickname, 300)?;
    let picture =
        body.picture.as_deref().map(parse_picture).transpose().map_err(|e| SignupError::bad("invalid_body", e.message()))?;
    let phone_number =
        body.phone_number.as_deref().map(parse_phone).transpose().map_err(|e| SignupError::bad("invalid_body", e.message()))?;
    let user_metadata = signup_metadata(body.user_metadata, limits)?;

    let user_id = UserId::new_database();
    let mut user = User::new_database(
        user_id.clone(),
        connection.id.clone(),
        &connection.name,
        email.clone(),
        crate::management::view::default_picture(&email),
        Timestamp::now(),
    );
    user.username = username;
    user.phone_number = phone_number;
    if let Some(name) = name {
        user.name = Some(name);
    }
    user.given_name = given_name;
    user.family_name = family_name;
    if let Some(nickname) = nickname {
        user.nickname = Some(nickname);
    }
    if let Some(picture) = picture {
        user.picture = Some(picture);
    }
    user.user_metadata = user_metadata;
    let password =
        crate::passwords::check_new(state, tenant, &connection, &user, raw_password, false).await.map_err(|r| match r {
            crate::passwords::Refusal::Policy { body, .. } => SignupError { status: StatusCode::BAD_REQUEST, body },
            crate::passwords::Refusal::Unavailable(e) => e.into(),
            crate::passwords::Refusal::Store(e) => e.into(),
            crate::passwords::Refusal::TooLong => SignupError::bad("invalid_password", r.summary()),
        })?;
    // Suspicious-IP throttling: signups per address, counted before any hash.
    let throttle =
        crate::attack::Throttle::from_settings(&crate::attack::throttling_settings(tenant).await?, "pre-user-registration");
    if throttle.charge(tenant, crate::attack::IP_SIGNUP, ip.as_deref()).await? > throttle.max_attempts {
        let mut ev = LogEvent::new(LogType::LimitMu, "Too many signups from this IP address");
        ev.ip = ip.clone();
        ev.client_id = Some(client.client_id.clone());
        ev.connection = Some(connection.name.clone());
        tenant.store.append_effects(ev).await?;
        return Err(SignupError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsError",
            "too_many_attempts",
            "We have detected suspicious signup behavior from your network. Try again later.",
        ));
    }
    // Hash first, on both paths: a taken address must not answer faster.
    let password_hash = state.hasher.hash(password).await?;
    let event = |kind: LogType, description: &str| {
        let mut ev = LogEvent::new(kind, description);
        ev.client_id = Some(client.client_id.clone());
        ev.client_name = Some(client.name.clone());
        ev.connection = Some(connection.name.clone());
        ev.connection_id = Some(connection.id.clone());
        ev.user_name = Some(email.to_string());
        ev.ip = ip.clone();
        ev.user_agent = user_agent.clone();
        ev
    };
    let mail_payload = json!({"client_id": client.client_id, "connection": connection.name});
    let mut ss = event(LogType::Ss, "Successful signup");
    ss.user_id = Some(user_id.clone());
    let mut effects = Effects::log(ss).remember_password(user_id.clone(), password_hash.clone());
    if let Some((ticket, mail)) =
        crate::tickets::verification(state, tenant, &user, Some(client.client_id.as_str()), &connection.name).await?
    {
        effects = effects.with_ticket(ticket).with_mail(mail);
    }
    let new = NewUser { user, password_hash: Some(password_hash) };
    match tenant.store.create_user(&new, effects).await {
        Ok(()) => Ok(signup_response(user_id.local(), &new.user)),
        Err(StoreError::Conflict(ConflictKind::Email)) => {
            let protected = option_bool(&connection.options, "prevent_signup_enumeration", true);
            let existing = tenant.store.user_by_login(&connection.id, email.as_str()).await?.map(|(u, _)| u.user_id);
            let mut fs = event(LogType::Fs, "The user already exists.");
            fs.user_id = existing.clone();
            let mut effects = Effects::log(fs);
            if protected {
                effects = effects.with_mail(OutboxMessage::new("duplicate_signup", email.as_str(), existing, mail_payload));
            }
            tenant.store.append_effects(effects).await?;
            if protected {
                // Indistinguishable from a new signup: same shape, a fresh id that exists nowhere.
                let decoy = UserId::new_database();
                Ok(signup_response(decoy.local(), &new.user))
            } else {
                Err(SignupError::invalid_signup())
            }
        }
        Err(StoreError::Conflict(_)) => {
            tenant.store.append_effects(event(LogType::Fs, "The username is already in use.")).await?;
            Err(SignupError::invalid_signup())
        }
        Err(e) => Err(e.into()),
    }
}

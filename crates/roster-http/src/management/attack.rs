//! `/api/v2/attack-protection/brute-force-protection` and `/api/v2/user-blocks…`, in Auth0's shapes.
//!
//! User blocks are the brute-force blocks (an identifier, from an IP); lifting one never touches the
//! admin `blocked` flag of the user. Only machine tokens reach these routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roster_domain::log::LogType;
use roster_domain::{Timestamp, UserId};
use roster_store::{AttackCounter, CounterScope, Effects};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::api_event;
use super::clients::{invalid, machine_only};
use super::users::ErrorBody;
use crate::attack::{
    BLOCK_WINDOW_MS, BRUTE_FORCE, IP_LOGIN, IP_SIGNUP, SUSPICIOUS_IP, Throttle, brute_force_settings, patch_brute_force,
    patch_throttling, throttling_settings,
};
use crate::error::ApiError;
use crate::extract::{
    ApiJson, ApiQuery, Authorized, DeleteAnomalyBlocks, ReadAnomalyBlocks, ReadAttackProtection, ReadUsers,
    UpdateAttackProtection, UpdateUsers,
};
use crate::state::AppState;

/// Brute-force protection settings.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BruteForceSchema {
    enabled: bool,
    /// `block`, `user_notification`.
    shields: Vec<String>,
    /// `count_per_identifier_and_ip` (default) or `count_per_identifier`.
    mode: String,
    /// IP addresses or CIDR ranges never counted.
    allowlist: Vec<String>,
    /// 1–100 (default 10).
    max_attempts: u32,
}

/// The tenant's brute-force protection settings.
#[utoipa::path(get, path = "/attack-protection/brute-force-protection", tag = "Attack protection",
    responses((status = 200, body = BruteForceSchema), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:attack_protection"])))]
pub async fn get_brute_force(auth: Authorized<ReadAttackProtection>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    Ok(Json(brute_force_settings(&auth.tenant).await?).into_response())
}

/// Change brute-force protection settings (given properties replace).
#[utoipa::path(patch, path = "/attack-protection/brute-force-protection", tag = "Attack protection",
    request_body = BruteForceSchema,
    responses((status = 200, body = BruteForceSchema), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:attack_protection"])))]
pub async fn patch_brute_force_settings(
    auth: Authorized<UpdateAttackProtection>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let current = brute_force_settings(&auth.tenant).await?;
    let updated = patch_brute_force(&current, body).map_err(invalid)?;
    let ev = api_event(&auth, LogType::Sapi, "Update brute-force protection settings");
    auth.tenant.store.put_attack_settings(BRUTE_FORCE, &updated, &ev).await?;
    crate::attack::forget_settings(&auth.tenant, BRUTE_FORCE);
    // A new threshold or mode changes which pairs are blocked.
    crate::attack::forget_blocks(&auth.tenant);
    Ok(Json(updated).into_response())
}

fn blocked_for(counters: &[AttackCounter]) -> Value {
    let list: Vec<Value> =
        counters.iter().map(|c| json!({ "identifier": c.identifier, "ip": c.ip, "connection": c.connection })).collect();
    json!({ "blocked_for": list })
}

fn since() -> Timestamp {
    Timestamp::from_millis(Timestamp::now().millis() - BLOCK_WINDOW_MS)
}

/// Query of `/user-blocks`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IdentifierQuery {
    /// Email, username or phone number the blocks are for.
    pub identifier: Option<String>,
    /// Ignored (Auth0 compatibility).
    pub consider_brute_force_enablement: Option<String>,
}

/// `{"blocked_for":[{"identifier","ip","connection"}]}`
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BlocksSchema {
    #[schema(value_type = Vec<Object>)]
    blocked_for: Vec<Value>,
}

fn identifier(q: IdentifierQuery) -> Result<String, ApiError> {
    q.identifier
        .filter(|i| !i.is_empty() && i.len() <= 512)
        .ok_or_else(|| ApiError::invalid_query("Query validation error: 'Missing required property: identifier'."))
}

/// Brute-force blocks of an identifier.
#[utoipa::path(get, path = "/user-blocks", tag = "User blocks", params(IdentifierQuery),
    responses((status = 200, body = BlocksSchema), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:users"])))]
pub async fn list_by_identifier(
    auth: Authorized<ReadUsers>,
    ApiQuery(q): ApiQuery<IdentifierQuery>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let scope = CounterScope::Identifier(identifier(q)?);
    Ok(Json(blocked_for(&auth.tenant.store.blocked_counters(&scope, since()).await?)).into_response())
}

/// Lift the brute-force blocks of an identifier (the user's `blocked` flag is untouched).
#[utoipa::path(delete, path = "/user-blocks", tag = "User blocks", params(IdentifierQuery),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:users"])))]
pub async fn delete_by_identifier(
    auth: Authorized<UpdateUsers>,
    ApiQuery(q): ApiQuery<IdentifierQuery>,
) -> Result<StatusCode, ApiError> {
    machine_only(&auth)?;
    let id = identifier(q)?;
    let mut ev = api_event(&auth, LogType::Ublkdu, "Brute-force blocks lifted by an administrator");
    ev.user_name = Some(id.clone());
    auth.tenant.store.clear_counters(&CounterScope::Identifier(id), Effects::log(ev)).await?;
    crate::attack::forget_blocks(&auth.tenant);
    Ok(StatusCode::NO_CONTENT)
}

/// `/t/{tenant}/api/v2/user-blocks/{id}`
#[derive(Debug, Deserialize)]
pub struct BlockPath {
    pub id: String,
}

/// Brute-force blocks of a user.
#[utoipa::path(get, path = "/user-blocks/{id}", tag = "User blocks", params(("id" = String, Path, description = "user_id")),
    responses((status = 200, body = BlocksSchema), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:users"])))]
pub async fn list_by_user(auth: Authorized<ReadUsers>, Path(path): Path<BlockPath>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let id = UserId::parse(&path.id).map_err(|_| ApiError::not_found_user())?;
    let user = auth.tenant.store.user(&id).await?.ok_or_else(ApiError::not_found_user)?;
    let store = &auth.tenant.store;
    let mut counters = store.blocked_counters(&CounterScope::User(id), since()).await?;
    // Also those of its identifiers counted before the account existed.
    for identifier in crate::attack::identifiers_of(&user) {
        for c in store.blocked_counters(&CounterScope::Identifier(identifier), since()).await? {
            if !counters.iter().any(|k| k.key == c.key) {
                counters.push(c);
            }
        }
    }
    Ok(Json(blocked_for(&counters)).into_response())
}

/// Lift the brute-force blocks of a user.
#[utoipa::path(delete, path = "/user-blocks/{id}", tag = "User blocks", params(("id" = String, Path, description = "user_id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:users"])))]
pub async fn delete_by_user(
    State(_state): State<AppState>,
    auth: Authorized<UpdateUsers>,
    Path(path): Path<BlockPath>,
) -> Result<StatusCode, ApiError> {
    machine_only(&auth)?;
    let id = UserId::parse(&path.id).map_err(|_| ApiError::not_found_user())?;
    let user = auth.tenant.store.user(&id).await?.ok_or_else(ApiError::not_found_user)?;
    let mut ev = api_event(&auth, LogType::Ublkdu, "Brute-force blocks lifted by an administrator");
    ev.user_id = Some(id.clone());
    // The user's counters, and those of its addresses counted before the user was known.
    let store = &auth.tenant.store;
    store.clear_counters(&CounterScope::User(id), Effects::log(ev)).await?;
    for identifier in crate::attack::identifiers_of(&user) {
        store.clear_counters(&CounterScope::Identifier(identifier), Effects::default()).await?;
    }
    crate::attack::forget_blocks(&auth.tenant);
    Ok(StatusCode::NO_CONTENT)
}

/// Suspicious-IP throttling settings.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ThrottlingSchema {
    enabled: bool,
    /// `block`, `admin_notification`.
    shields: Vec<String>,
    allowlist: Vec<String>,
    /// `pre-login` (failed logins per IP, any account) and `pre-user-registration` (signups per IP):
    /// `{max_attempts, rate}`, `rate` in milliseconds per attempt given back; counted in windows of
    /// `max_attempts × rate`.
    #[schema(value_type = Object)]
    stage: Value,
}

/// The tenant's suspicious-IP throttling settings.
#[utoipa::path(get, path = "/attack-protection/suspicious-ip-throttling", tag = "Attack protection",
    responses((status = 200, body = ThrottlingSchema), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:attack_protection"])))]
pub async fn get_throttling(auth: Authorized<ReadAttackProtection>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    Ok(Json(throttling_settings(&auth.tenant).await?).into_response())
}

/// Change suspicious-IP throttling settings (given properties replace; stages merge).
#[utoipa::path(patch, path = "/attack-protection/suspicious-ip-throttling", tag = "Attack protection",
    request_body = ThrottlingSchema,
    responses((status = 200, body = ThrottlingSchema), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:attack_protection"])))]
pub async fn patch_throttling_settings(
    auth: Authorized<UpdateAttackProtection>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let current = throttling_settings(&auth.tenant).await?;
    let updated = patch_throttling(&current, body).map_err(invalid)?;
    let ev = api_event(&auth, LogType::Sapi, "Update suspicious IP throttling settings");
    auth.tenant.store.put_attack_settings(SUSPICIOUS_IP, &updated, &ev).await?;
    crate::attack::forget_settings(&auth.tenant, SUSPICIOUS_IP);
    Ok(Json(updated).into_response())
}

/// `/t/{tenant}/api/v2/anomaly/blocks/ips/{id}`
#[derive(Debug, Deserialize)]
pub struct IpPath {
    pub id: String,
}

fn parse_ip(raw: &str) -> Result<String, ApiError> {
    raw.parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| ApiError::bad_request("Path validation error: 'id' must be an IP address."))
}

/// Whether an IP address is throttled (200) or not (404).
#[utoipa::path(get, path = "/anomaly/blocks/ips/{id}", tag = "Attack protection",
    params(("id" = String, Path, description = "IP address")),
    responses((status = 200), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:anomaly_blocks"])))]
pub async fn get_ip_block(auth: Authorized<ReadAnomalyBlocks>, Path(path): Path<IpPath>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let ip = parse_ip(&path.id)?;
    let settings = throttling_settings(&auth.tenant).await?;
    let login = Throttle::from_settings(&settings, "pre-login").exceeded(&auth.tenant, IP_LOGIN, Some(&ip)).await?;
    let signup = Throttle::from_settings(&settings, "pre-user-registration").exceeded(&auth.tenant, IP_SIGNUP, Some(&ip)).await?;
    if login || signup {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "The IP address is not blocked.", Some("inexistent_ip_block")))
    }
}

/// Lift the throttling of an IP address (its counters start again).
#[utoipa::path(delete, path = "/anomaly/blocks/ips/{id}", tag = "Attack protection",
    params(("id" = String, Path, description = "IP address")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["delete:anomaly_blocks"])))]
pub async fn delete_ip_block(auth: Authorized<DeleteAnomalyBlocks>, Path(path): Path<IpPath>) -> Result<StatusCode, ApiError> {
    machine_only(&auth)?;
    let ip = parse_ip(&path.id)?;
    let mut ev = api_event(&auth, LogType::Sapi, "Lift the throttling of an IP address");
    ev.ip = Some(ip.clone());
    auth.tenant.store.clear_counters(&CounterScope::Ip(ip), Effects::log(ev)).await?;
    Ok(StatusCode::NO_CONTENT)
}

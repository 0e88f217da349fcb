//! `/api/v2/connections`: a tenant's database connections, in Auth0's shapes.
//!
//! Only the `auth0` (database) strategy exists. The options Roster acts on (signup, username, password
//! policy, brute-force protection) are type-checked here, so the login and signup code can trust what
//! it reads; options Roster does not know are kept exactly as given, as Auth0 stores them. A PATCH
//! replaces `options` wholesale (Auth0's semantics) and never renames: a connection's name is what
//! users, tokens and identities refer to. Deleting a connection deletes its users in the same
//! transaction. These routes administer the tenant: only machine tokens reach them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roster_domain::log::LogType;
use roster_domain::{ConnectionId, Timestamp};
use roster_store::{Connection, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::api_event;
use super::clients::{Paging, invalid, machine_only, null_refused, nullable, parse_bool, record_failure};
use super::users::ErrorBody;
use super::view::Projection;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Authorized, CreateConnections, DeleteConnections, ReadConnections, UpdateConnections};
use crate::state::AppState;

/// The only strategy Roster serves.
const DATABASE_STRATEGY: &str = "auth0";
const PASSWORD_POLICIES: &[&str] = &["none", "low", "fair", "good", "excellent", "nist"];
/// Auth0's limits on a custom password dictionary.
const MAX_DICTIONARY_ENTRIES: usize = 200;
const MAX_DICTIONARY_ENTRY_CHARS: usize = 50;

// ---- values parsed at the edge ----

/// `[A-Za-z0-9-]`, 1–128 characters, not starting or ending with `-`.
fn parse_name(s: &str) -> Result<String, ApiError> {
    let ok = (1..=128).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(invalid("Property name must be 1 to 128 characters from A-Z, a-z, 0-9 and '-', not starting or ending with '-'"))
    }
}

fn parse_strategy(s: &str) -> Result<String, ApiError> {
    if s == DATABASE_STRATEGY {
        Ok(s.to_owned())
    } else {
        Err(invalid(format!("Strategy \"{s}\" is not supported; only \"auth0\" (database) connections can be created")))
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong_type(path: &str, expected: &str, v: &Value) -> ApiError {
    invalid(format!("Expected type {expected} but found type {} on property {path}", type_name(v)))
}

fn expect_bool(path: &str, v: &Value) -> Result<(), ApiError> {
    if v.is_boolean() { Ok(()) } else { Err(wrong_type(path, "boolean", v)) }
}

fn expect_int_in(path: &str, v: &Value, range: std::ops::RangeInclusive<u64>) -> Result<(), ApiError> {
    match v.as_u64() {
        Some(n) if range.contains(&n) => Ok(()),
        Some(_) => Err(invalid(format!("Value must be between {} and {} on property {path}", range.start(), range.end()))),
        None => Err(wrong_type(path, "integer", v)),
    }
}

/// A sub-object of options whose properties Roster knows: each known one is checked, an unknown one
/// (often a typo that would silently weaken a security setting) is refused, and `required` ones
/// must be present.
fn check_object(
    path: &str,
    v: &Value,
    required: &[&str],
    check: impl Fn(&str, &str, &Value) -> Option<Result<(), ApiError>>,
) -> Result<(), ApiError> {
    let Value::Object(m) = v else {
        return Err(wrong_type(path, "object", v));
    };
    for r in required {
        if !m.contains_key(*r) {
            return Err(invalid(format!("Missing required property: {path}.{r}")));
        }
    }
    for (k, val) in m {
        let sub = format!("{path}.{k}");
        match check(k, &sub, val) {
            Some(result) => result?,
            None => return Err(invalid(format!("Additional property {k} not allowed on property {path}"))),
        }
    }
    Ok(())
}

/// Type-check the database-connection options Roster acts on; keep every other key as given.
fn parse_options(v: Value) -> Result<Value, ApiError> {
    let Value::Object(m) = v else {
        return Err(wrong_type("options", "object", &v));
    };
    for (k, val) in &m {
        let path = format!("options.{k}");
        match k.as_str() {
            "requires_username" | "disable_signup" | "prevent_signup_enumeration" | "brute_force_protection" => {
                expect_bool(&path, val)?;
            }
            "passwordPolicy" => match val {
                // Auth0 accepts null (no policy chosen).
                Value::Null => {}
                Value::String(p) if PASSWORD_POLICIES.contains(&p.as_str()) => {}
                Value::String(p) => {
                    return Err(invalid(format!(
                        "No enum match for: \"{p}\" on property {path} (one of {})",
                        PASSWORD_POLICIES.join(", ")
                    )));
                }
                other => return Err(wrong_type(&path, "string", other)),
            },
            "password_complexity_options" => check_object(&path, val, &[], |k, p, v| match k {
                "min_length" => Some(expect_int_in(p, v, 1..=128)),
                _ => None,
            })?,
            "password_history" => check_object(&path, val, &["enable"], |k, p, v| match k {
                "enable" => Some(expect_bool(p, v)),
                "size" => Some(expect_int_in(p, v, 1..=24)),
                _ => None,
            })?,
            "password_dictionary" => check_object(&path, val, &["enable"], |k, p, v| match k {
                "enable" => Some(expect_bool(p, v)),
                "dictionary" => Some(check_dictionary(p, v)),
                _ => None,
            })?,
            "password_no_personal_info" => check_object(&path, val, &["enable"], |k, p, v| match k {
                "enable" => Some(expect_bool(p, v)),
                _ => None,
            })?,
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn check_dictionary(path: &str, v: &Value) -> Result<(), ApiError> {
    let Value::Array(words) = v else {
        return Err(wrong_type(path, "array", v));
    };
    if words.len() > MAX_DICTIONARY_ENTRIES {
        return Err(invalid(format!("Array is too long (maximum {MAX_DICTIONARY_ENTRIES} items) on property {path}")));
    }
    for w in words {
        match w.as_str() {
            Some(s) if s.chars().count() <= MAX_DICTIONARY_ENTRY_CHARS => {}
            Some(_) => {
                return Err(invalid(format!(
                    "String is too long (maximum {MAX_DICTIONARY_ENTRY_CHARS} characters) on property {path}"
                )));
            }
            None => return Err(wrong_type(path, "string", w)),
        }
    }
    Ok(())
}

// ---- wire form ----

/// A connection as the API returns it. `enabled_clients` is always empty until per-client enablement
/// exists (every client may use every connection meanwhile).
fn connection_json(c: &Connection) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "strategy": c.strategy,
        "options": c.options,
        "enabled_clients": [],
    })
}

fn not_found_connection() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "The connection does not exist.", Some("inexistent_connection"))
}

fn parse_connection_id(raw: &str) -> Result<ConnectionId, ApiError> {
    ConnectionId::parse(raw).map_err(|_| not_found_connection())
}

fn conflict() -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "A connection with the same name already exists.", Some("connection_conflict"))
}

/// `/t/{tenant}/api/v2/connections/{id}`
#[derive(Debug, Deserialize)]
pub struct ConnectionPath {
    #[allow(dead_code)]
    tenant: String,
    id: String,
}

// ---- handlers ----

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListConnectionsParams {
    /// Comma-separated strategies to keep (`auth0`).
    pub strategy: Option<String>,
    /// Exact connection name.
    pub name: Option<String>,
    /// Page index, 0-based.
    pub page: Option<String>,
    /// Results per page, 0–100 (default 50).
    pub per_page: Option<String>,
    /// `true` wraps the page as `{start, limit, length, total, connections}`.
    pub include_totals: Option<String>,
    /// Comma-separated fields to include (or exclude with `include_fields=false`).
    pub fields: Option<String>,
    pub include_fields: Option<String>,
}

/// List the tenant's connections.
#[utoipa::path(get, path = "/connections", tag = "Connections", params(ListConnectionsParams),
    responses((status = 200, description = "A page of connections (an array, or an object with totals)", body = [ConnectionSchema]),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:connections"])))]
pub async fn list_connections(
    auth: Authorized<ReadConnections>,
    ApiQuery(params): ApiQuery<ListConnectionsParams>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let paging = Paging::parse(params.page.as_deref(), params.per_page.as_deref(), params.include_totals.as_deref())?;
    let strategies: Option<Vec<&str>> =
        params.strategy.as_deref().filter(|s| !s.is_empty()).map(|s| s.split(',').map(str::trim).collect());
    let name = params.name.as_deref().filter(|s| !s.is_empty());
    let projection =
        Projection::new(params.fields.as_deref(), parse_bool("include_fields", params.include_fields.as_deref(), true)?);
    let connections: Vec<Value> = auth
        .tenant
        .store
        .list_connections()
        .await?
        .iter()
        .filter(|c| strategies.as_ref().is_none_or(|s| s.contains(&c.strategy.as_str())))
        .filter(|c| name.is_none_or(|n| c.name == n))
        .map(|c| projection.apply(connection_json(c)))
        .collect();
    Ok(Json(paging.respond("connections", connections)).into_response())
}

/// Get one connection.
#[utoipa::path(get, path = "/connections/{id}", tag = "Connections", params(("id" = String, Path, description = "Connection id (`con_…`)")),
    responses((status = 200, body = ConnectionSchema), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:connections"])))]
pub async fn get_connection(auth: Authorized<ReadConnections>, Path(path): Path<ConnectionPath>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let id = parse_connection_id(&path.id)?;
    let c = auth.tenant.store.connection(&id).await?.ok_or_else(not_found_connection)?;
    Ok(Json(connection_json(&c)).into_response())
}

/// Body of `POST /connections`. Unknown properties are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnectionBody {
    /// `[A-Za-z0-9-]`, 1–128 characters, not starting or ending with `-`; unique in the tenant.
    pub name: Option<String>,
    /// Must be `auth0` (a database connection).
    pub strategy: Option<String>,
    /// Database-connection options. Checked: `requires_username`, `disable_signup`,
    /// `prevent_signup_enumeration` (default true), `brute_force_protection` (booleans),
    /// `passwordPolicy` (`none|low|fair|good|excellent|nist`), `password_complexity_options.min_length`
    /// (1–128), `password_history {enable, size ≤ 24}`, `password_dictionary {enable, dictionary[]}`,
    /// `password_no_personal_info {enable}`. Other keys are kept as given.
    #[schema(value_type = Option<Object>)]
    pub options: Option<Value>,
}

/// Create a database connection.
#[utoipa::path(post, path = "/connections", tag = "Connections", request_body = CreateConnectionBody,
    responses((status = 201, body = ConnectionSchema), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["create:connections"])))]
pub async fn create_connection(
    State(state): State<AppState>,
    auth: Authorized<CreateConnections>,
    ApiJson(body): ApiJson<CreateConnectionBody>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let name = parse_name(body.name.as_deref().ok_or_else(|| invalid("Missing required property: name"))?)?;
    let strategy = parse_strategy(body.strategy.as_deref().ok_or_else(|| invalid("Missing required property: strategy"))?)?;
    let options = parse_options(body.options.unwrap_or_else(|| json!({})))?;
    let connection = Connection { id: ConnectionId::new_random(), name, strategy, options, created_at: Timestamp::now() };
    let mut ev = api_event(&auth, LogType::Sapi, "Create a Connection");
    ev.connection = Some(connection.name.clone());
    ev.connection_id = Some(connection.id.clone());
    match auth.tenant.store.create_connection(&connection, &ev).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(connection_json(&connection))).into_response()),
        Err(StoreError::Conflict(_)) => {
            record_failure(&state, &auth, "Create a Connection").await;
            Err(conflict())
        }
        Err(e) => Err(e.into()),
    }
}

/// Body of `PATCH /connections/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConnectionBody {
    /// Replaces the whole options object (checked as in creation).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub options: Option<Option<Value>>,
    /// Accepted only when equal to the current name: a connection cannot be renamed.
    pub name: Option<String>,
}

/// Update a connection: `options` replaces the stored object wholesale.
#[utoipa::path(patch, path = "/connections/{id}", tag = "Connections", params(("id" = String, Path, description = "Connection id (`con_…`)")),
    request_body = UpdateConnectionBody,
    responses((status = 200, body = ConnectionSchema), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:connections"])))]
pub async fn update_connection(
    auth: Authorized<UpdateConnections>,
    Path(path): Path<ConnectionPath>,
    ApiJson(body): ApiJson<UpdateConnectionBody>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let id = parse_connection_id(&path.id)?;
    let options = body.options.map(|o| o.ok_or_else(|| null_refused("options")).and_then(parse_options)).transpose()?;
    let store = &auth.tenant.store;
    let mut connection = store.connection(&id).await?.ok_or_else(not_found_connection)?;
    if body.name.as_deref().is_some_and(|n| n != connection.name) {
        return Err(invalid("The name of a connection cannot be changed"));
    }
    let mut fields = Vec::new();
    if let Some(o) = options {
        connection.options = o;
        fields.push("options");
    }
    let mut ev = api_event(&auth, LogType::Sapi, "Update a Connection");
    ev.connection = Some(connection.name.clone());
    ev.connection_id = Some(connection.id.clone());
    ev.details = json!({ "fields": fields });
    if !store.update_connection(&connection, &ev).await? {
        return Err(not_found_connection());
    }
    Ok(Json(connection_json(&connection)).into_response())
}

/// Delete a connection and, in the same transaction, all of its users.
#[utoipa::path(delete, path = "/connections/{id}", tag = "Connections", params(("id" = String, Path, description = "Connection id (`con_…`)")),
    responses((status = 204, description = "Deleted with its users (or did not exist)"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["delete:connections"])))]
pub async fn delete_connection(
    auth: Authorized<DeleteConnections>,
    Path(path): Path<ConnectionPath>,
) -> Result<StatusCode, ApiError> {
    machine_only(&auth)?;
    let Ok(id) = ConnectionId::parse(&path.id) else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let store = &auth.tenant.store;
    let Some(connection) = store.connection(&id).await? else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let mut ev = api_event(&auth, LogType::Sapi, "Delete a Connection");
    ev.connection = Some(connection.name.clone());
    ev.connection_id = Some(connection.id.clone());
    store.delete_connection(&id, &ev).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- OpenAPI-only schemas ----

/// A connection.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConnectionSchema {
    #[schema(example = "con_3kQv9XbT2mWc8LpZ")]
    id: String,
    #[schema(example = "Username-Password-Authentication")]
    name: String,
    #[schema(example = "auth0")]
    strategy: String,
    options: Map<String, Value>,
    /// Always empty for now: every client may use every connection.
    enabled_clients: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["Username-Password-Authentication", "a", "db1", &"x".repeat(128)] {
            assert!(parse_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a_b", "a b", "é", &"x".repeat(129)] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options() {
        let ok = json!({
            "requires_username": true, "disable_signup": false, "prevent_signup_enumeration": false,
            "brute_force_protection": true, "passwordPolicy": "nist",
            "password_complexity_options": {"min_length": 12},
            "password_history": {"enable": true, "size": 24},
            "password_dictionary": {"enable": true, "dictionary": ["acme", "roster"]},
            "password_no_personal_info": {"enable": true},
            "custom_thing": {"anything": [1, 2]},
        });
        assert_eq!(parse_options(ok.clone()).ok(), Some(ok), "kept as given, unknown keys included");
        assert!(parse_options(json!({"passwordPolicy": null})).is_ok());
        for bad in [
            json!([]),
            json!({"disable_signup": "yes"}),
            json!({"requires_username": 1}),
            json!({"passwordPolicy": "strong"}),
            json!({"passwordPolicy": 3}),
            json!({"password_complexity_options": {"min_length": 0}}),
            json!({"password_complexity_options": {"min_length": 129}}),
            json!({"password_complexity_options": {"min_length": "8"}}),
            json!({"password_complexity_options": {"min_lenght": 8}}),
            json!({"password_history": {"enable": true, "size": 25}}),
            json!({"password_history": {"size": 5}}),
            json!({"password_dictionary": {"enable": true, "dictionary": "acme"}}),
            json!({"password_dictionary": {"enable": true, "dictionary": [1]}}),
            json!({"password_dictionary": {"enable": true, "dictionary": ["x".repeat(51)]}}),
            json!({"password_no_personal_info": true}),
            json!({"brute_force_protection": null}),
        ] {
            assert!(parse_options(bad.clone()).is_err(), "{bad}");
        }
    }
}

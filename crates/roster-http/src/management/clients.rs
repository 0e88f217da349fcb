//! `/api/v2/clients`: a tenant's applications (OAuth clients), in Auth0's shapes.
//!
//! A client secret is generated here and shown exactly twice in its life: in the creation response and
//! in a rotation response. It is stored only as SHA-256; no other response carries `client_secret`,
//! and none may ever carry the stored hash. The tenant's Management API client is protected (it cannot
//! be deleted and its grant types cannot change) so that a tenant cannot lock its operator out.
//! These routes administer the tenant: only machine (client-credentials) tokens reach them.
//!
//! Input is parsed at the edge into the values stored: names, application types, grant types,
//! authentication methods and redirect URLs are checked here, and the combination is checked once
//! more on the final client (a public client cannot use `client_credentials`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roster_auth::secret::{hash_secret, new_client_secret};
use roster_domain::log::LogType;
use roster_domain::{ClientId, Timestamp};
use roster_store::{Client, StoreError};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::api_event;
use super::view::Projection;
use crate::error::ApiError;
use crate::extract::{
    ApiJson, ApiQuery, Authorized, CreateClients, DeleteClients, Principal, ReadClients, Requirement, RotateClientSecrets,
    Subject, UpdateClients,
};
use crate::state::AppState;

// ---- shared with connections.rs ----

/// Tenant administration is for machine tokens only: a user-scoped token is refused whatever scopes
/// it carries.
pub(super) fn machine_only<R: Requirement>(auth: &Authorized<R>) -> Result<(), ApiError> {
    match auth.subject {
        Subject::Client(_) => Ok(()),
        Subject::User(_) => Err(ApiError::insufficient_scope(R::ANY_OF)),
    }
}

/// `fapi`: a Management write refused after authorization (protected object, conflict).
pub(super) async fn record_failure(state: &AppState, p: &Principal, what: &str) {
    let ev = api_event(p, LogType::Fapi, what);
    if let Err(e) = state.logs.record(p.tenant.id.clone(), ev).await {
        tracing::warn!(error = ?e, "could not record a failed API operation");
    }
}

/// `Payload validation error: '…'.`, Auth0's wording for a body it refuses.
pub(super) fn invalid(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Payload validation error: '{detail}'."))
}

/// Distinguishes an absent property (`None`) from an explicit `null` (`Some(None)`) in PATCH bodies.
pub(super) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

pub(super) fn null_refused(prop: &str) -> ApiError {
    invalid(format!("Expected a value but found null on property {prop}"))
}

pub(super) fn parse_bool(name: &str, v: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match v {
        None | Some("") => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(ApiError::invalid_query(format!("Query validation error: '{name}' must be true or false."))),
    }
}

/// `page` / `per_page` / `include_totals` over a listing the store returns whole (clients and
/// connections are few per tenant).
#[derive(Debug, Clone, Copy)]
pub(super) struct Paging {
    page: u64,
    per_page: u64,
    with_totals: bool,
}

impl Paging {
    const DEFAULT_PER_PAGE: u64 = 50;
    const MAX_PER_PAGE: u64 = 100;

    pub(super) fn parse(page: Option<&str>, per_page: Option<&str>, include_totals: Option<&str>) -> Result<Self, ApiError> {
        let num = |name: &str, v: Option<&str>| -> Result<Option<u64>, ApiError> {
            v.filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<u32>().map(u64::from).map_err(|_| {
                        ApiError::invalid_query(format!("Query validation error: '{name}' must be a non-negative integer."))
                    })
                })
                .transpose()
        };
        let page = num("page", page)?.unwrap_or(0);
        let per_page = num("per_page", per_page)?.unwrap_or(Self::DEFAULT_PER_PAGE);
        if per_page > Self::MAX_PER_PAGE {
            return Err(ApiError::invalid_query("Query validation error: 'per_page' must be at most 100."));
        }
        Ok(Self { page, per_page, with_totals: parse_bool("include_totals", include_totals, false)? })
    }

    /// One page of `items`: a bare array, or `{start, limit, length, total, <key>}` with totals.
    pub(super) fn respond(self, key: &str, items: Vec<Value>) -> Value {
        let total = items.len();
        let start = self.page.saturating_mul(self.per_page);
        let page: Vec<Value> = items
            .into_iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(usize::try_from(self.per_page).unwrap_or(usize::MAX))
            .collect();
        if self.with_totals {
            let mut body = json!({"start": start, "limit": self.per_page, "length": page.len(), "total": total});
            body[key] = Value::Array(page);
            body
        } else {
            Value::Array(page)
        }
    }
}

// ---- values parsed at the edge ----

const APP_TYPES: &[&str] = &["regular_web", "spa", "native", "non_interactive"];
const GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    "http://auth0.com/oauth/grant-type/password-realm",
];
const AUTH_METHODS: &[&str] = &["client_secret_post", "client_secret_basic", "none"];
/// Redirect and logout URLs per client, and the length of each.
const MAX_URLS: usize = 100;
const MAX_URL_LEN: usize = 2048;

fn parse_name(s: String) -> Result<String, ApiError> {
    let n = s.chars().count();
    if !(1..=255).contains(&n) || s.trim().is_empty() {
        return Err(invalid("String length for property name must be between 1 and 255 characters"));
    }
    if s.chars().any(|c| c.is_control() || c == '<' || c == '>') {
        return Err(invalid("Property name must not contain '<', '>' or control characters"));
    }
    Ok(s)
}

fn parse_description(s: String) -> Result<String, ApiError> {
    if s.chars().count() > 140 {
        return Err(invalid("String is too long (maximum 140 characters) on property description"));
    }
    Ok(s)
}

fn parse_app_type(s: &str) -> Result<&'static str, ApiError> {
    APP_TYPES
        .iter()
        .find(|t| **t == s)
        .copied()
        .ok_or_else(|| invalid(format!("No enum match for: \"{s}\" on property app_type (one of {})", APP_TYPES.join(", "))))
}

fn parse_auth_method(s: &str) -> Result<&'static str, ApiError> {
    AUTH_METHODS.iter().find(|t| **t == s).copied().ok_or_else(|| {
        invalid(format!("No enum match for: \"{s}\" on property token_endpoint_auth_method (one of {})", AUTH_METHODS.join(", ")))
    })
}

/// Known grant types, duplicates dropped (first occurrence kept). The implicit grant is refused: it
/// puts tokens in URLs, and OAuth 2.0 Security BCP deprecates it in favour of the code flow with PKCE.
fn parse_grant_types(v: Vec<String>) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for g in v {
        if g == "implicit" {
            return Err(invalid("The implicit grant is not supported; use authorization_code with PKCE"));
        }
        if !GRANT_TYPES.contains(&g.as_str()) {
            return Err(invalid(format!(
                "Unknown grant type \"{g}\" on property grant_types (one of {})",
                GRANT_TYPES.join(", ")
            )));
        }
        if !out.contains(&g) {
            out.push(g);
        }
    }
    Ok(out)
}

/// An absolute `http(s)` URL without fragment or credentials, kept exactly as given (redirects are
/// matched against the registered string). `javascript:`, `data:` and every other scheme are refused.
fn parse_url(prop: &str, raw: &str) -> Result<(), ApiError> {
    let bad = |why: &str| invalid(format!("{raw:?} is not a valid URL on property {prop}: {why}"));
    if raw.is_empty() || raw.len() > MAX_URL_LEN {
        return Err(bad("length must be 1 to 2048"));
    }
    // The URL parser would silently trim whitespace and read `\` as `/`; the stored string must be the
    // one that gets matched, so refuse what it would rewrite.
    if raw.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
        return Err(bad("whitespace, control characters and '\\' are not allowed"));
    }
    let lower = raw.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(bad("only absolute http and https URLs are allowed"));
    }
    let url = url::Url::parse(raw).map_err(|_| bad("it cannot be parsed"))?;
    if url.fragment().is_some() {
        return Err(bad("a fragment ('#') is not allowed"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials are not allowed"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("a host is required"));
    }
    Ok(())
}

fn parse_urls(prop: &str, v: Vec<String>) -> Result<Vec<String>, ApiError> {
    if v.len() > MAX_URLS {
        return Err(invalid(format!("Array is too long (maximum {MAX_URLS} items) on property {prop}")));
    }
    for u in &v {
        parse_url(prop, u)?;
    }
    Ok(v)
}

fn default_grant_types(app_type: &str) -> Vec<String> {
    let grants: &[&str] = match app_type {
        "non_interactive" => &["client_credentials"],
        _ => &["authorization_code", "refresh_token"],
    };
    grants.iter().map(|g| (*g).to_owned()).collect()
}

fn default_auth_method(app_type: &str) -> &'static str {
    match app_type {
        "spa" | "native" => "none",
        _ => "client_secret_post",
    }
}

/// Rules over the whole client, checked on the final state of both POST and PATCH.
fn check_combination(c: &Client) -> Result<(), ApiError> {
    if c.token_endpoint_auth_method == "none" && c.grant_types.iter().any(|g| g == "client_credentials") {
        return Err(invalid(
            "The client_credentials grant requires a confidential client: token_endpoint_auth_method cannot be none",
        ));
    }
    if c.token_endpoint_auth_method == "none" && c.token_endpoint_ip_header_trusted {
        return Err(invalid(
            "token_endpoint_ip_header_trusted requires a confidential client: token_endpoint_auth_method cannot be none",
        ));
    }
    Ok(())
}

// ---- wire form ----

/// A client as the API returns it. `secret` is given only by creation and rotation.
fn client_json(c: &Client, secret: Option<&str>) -> Value {
    let mut v = json!({
        "client_id": c.client_id,
        "name": c.name,
        "description": c.description,
        "app_type": c.app_type,
        "callbacks": c.callbacks,
        "allowed_logout_urls": c.allowed_logout_urls,
        "grant_types": c.grant_types,
        "token_endpoint_auth_method": c.token_endpoint_auth_method,
        "is_first_party": c.is_first_party,
        "token_endpoint_ip_header_trusted": c.token_endpoint_ip_header_trusted,
    });
    if let Some(s) = secret {
        v["client_secret"] = json!(s);
    }
    v
}

fn not_found_client() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "The client does not exist.", Some("inexistent_client"))
}

fn parse_client_id(raw: &str) -> Result<ClientId, ApiError> {
    // An id that cannot exist is reported as a missing client.
    ClientId::parse(raw).map_err(|_| not_found_client())
}

fn management_protected(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!("The tenant's Management API client cannot be {what}."),
        Some("operation_not_supported"),
    )
}

/// `/t/{tenant}/api/v2/clients/{id}`
#[derive(Debug, Deserialize)]
pub struct ClientPath {
    #[allow(dead_code)]
    tenant: String,
    id: String,
}

// ---- handlers ----

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListClientsParams {
    /// Page index, 0-based.
    pub page: Option<String>,
    /// Results per page, 0–100 (default 50).
    pub per_page: Option<String>,
    /// `true` wraps the page as `{start, limit, length, total, clients}`.
    pub include_totals: Option<String>,
    /// Comma-separated application types to keep (`regular_web,spa`).
    pub app_type: Option<String>,
    /// Keep only first-party (`true`) or third-party (`false`) clients.
    pub is_first_party: Option<String>,
    /// Comma-separated fields to include (or exclude with `include_fields=false`).
    pub fields: Option<String>,
    pub include_fields: Option<String>,
}

/// List the tenant's clients (secrets never included).
#[utoipa::path(get, path = "/clients", tag = "Clients", params(ListClientsParams),
    responses((status = 200, description = "A page of clients (an array, or an object with totals)", body = [ClientSchema]),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:clients"])))]
pub async fn list_clients(
    auth: Authorized<ReadClients>,
    ApiQuery(params): ApiQuery<ListClientsParams>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let paging = Paging::parse(params.page.as_deref(), params.per_page.as_deref(), params.include_totals.as_deref())?;
    let app_types = match params.app_type.as_deref().filter(|s| !s.is_empty()) {
        Some(list) => Some(
            list.split(',')
                .map(|t| {
                    parse_app_type(t.trim())
                        .map_err(|_| ApiError::invalid_query(format!("Query validation error: unknown app_type {t:?}.")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let first_party = match params.is_first_party.as_deref().filter(|s| !s.is_empty()) {
        Some(v) => Some(parse_bool("is_first_party", Some(v), true)?),
        None => None,
    };
    let projection =
        Projection::new(params.fields.as_deref(), parse_bool("include_fields", params.include_fields.as_deref(), true)?);
    let clients: Vec<Value> = auth
        .tenant
        .store
        .list_clients()
        .await?
        .iter()
        .filter(|c| app_types.as_ref().is_none_or(|ts| ts.contains(&c.app_type.as_str())))
        .filter(|c| first_party.is_none_or(|fp| c.is_first_party == fp))
        .map(|c| projection.apply(client_json(c, None)))
        .collect();
    Ok(Json(paging.respond("clients", clients)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientFieldsParams {
    pub fields: Option<String>,
    pub include_fields: Option<String>,
}

/// Get one client (its secret is never returned here).
#[utoipa::path(get, path = "/clients/{id}", tag = "Clients", params(("id" = String, Path, description = "client_id"), ClientFieldsParams),
    responses((status = 200, body = ClientSchema), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:clients"])))]
pub async fn get_client(
    auth: Authorized<ReadClients>,
    Path(path): Path<ClientPath>,
    ApiQuery(params): ApiQuery<ClientFieldsParams>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let id = parse_client_id(&path.id)?;
    let projection =
        Projection::new(params.fields.as_deref(), parse_bool("include_fields", params.include_fields.as_deref(), true)?);
    let client = auth.tenant.store.client(&id).await?.ok_or_else(not_found_client)?;
    Ok(Json(projection.apply(client_json(&client, None))).into_response())
}

/// Body of `POST /clients`. Unknown properties are refused, as Auth0 does.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClientBody {
    /// 1–255 characters, without `<` or `>`.
    pub name: Option<String>,
    /// At most 140 characters.
    pub description: Option<String>,
    /// `regular_web` (default), `spa`, `native` or `non_interactive`.
    pub app_type: Option<String>,
    /// Allowed redirect URLs: absolute `http(s)` URLs without fragment.
    pub callbacks: Option<Vec<String>>,
    /// Allowed post-logout URLs: absolute `http(s)` URLs without fragment.
    pub allowed_logout_urls: Option<Vec<String>>,
    /// Default: `client_credentials` for `non_interactive`, else `authorization_code` and `refresh_token`.
    /// `implicit` is refused.
    pub grant_types: Option<Vec<String>>,
    /// `client_secret_post`, `client_secret_basic` or `none` (default `none` for `spa` and `native`,
    /// else `client_secret_post`).
    pub token_endpoint_auth_method: Option<String>,
    /// Default `true`.
    pub is_first_party: Option<bool>,
    /// Let this confidential client name the end user's address in `auth0-forwarded-for` on the
    /// password grants (default `false`).
    pub token_endpoint_ip_header_trusted: Option<bool>,
}

/// Create a client. The response is the only one, with rotation, that carries `client_secret`.
#[utoipa::path(post, path = "/clients", tag = "Clients", request_body = CreateClientBody,
    responses((status = 201, body = ClientSchema, description = "The client, with its secret (shown once)"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["create:clients"])))]
pub async fn create_client(
    auth: Authorized<CreateClients>,
    ApiJson(body): ApiJson<CreateClientBody>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let name = parse_name(body.name.ok_or_else(|| invalid("Missing required property: name"))?)?;
    let app_type = parse_app_type(body.app_type.as_deref().unwrap_or("regular_web"))?;
    let grant_types = match body.grant_types {
        Some(g) => parse_grant_types(g)?,
        None => default_grant_types(app_type),
    };
    let token_endpoint_auth_method = match body.token_endpoint_auth_method.as_deref() {
        Some(m) => parse_auth_method(m)?,
        None => default_auth_method(app_type),
    };
    let secret = new_client_secret();
    let client = Client {
        client_id: ClientId::new_random(),
        name,
        secret_hash: hash_secret(&secret),
        app_type: app_type.to_owned(),
        is_management: false,
        grant_types,
        callbacks: parse_urls("callbacks", body.callbacks.unwrap_or_default())?,
        allowed_logout_urls: parse_urls("allowed_logout_urls", body.allowed_logout_urls.unwrap_or_default())?,
        token_endpoint_auth_method: token_endpoint_auth_method.to_owned(),
        is_first_party: body.is_first_party.unwrap_or(true),
        description: parse_description(body.description.unwrap_or_default())?,
        created_at: Timestamp::now(),
        token_endpoint_ip_header_trusted: body.token_endpoint_ip_header_trusted.unwrap_or(false),
    };
    check_combination(&client)?;
    let mut ev = api_event(&auth, LogType::Sapi, "Create a Client");
    ev.details = json!({"client_id": client.client_id, "client_name": client.name});
    auth.tenant.store.create_client(&client, &ev).await.map_err(|e| match e {
        // Ids are 32 random characters; a collision is not worth a retry loop, only a clear answer.
        StoreError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "A client with this client_id already exists.", None),
        other => other.into(),
    })?;
    Ok((StatusCode::CREATED, Json(client_json(&client, Some(&secret)))).into_response())
}

/// Body of `PATCH /clients/{id}`: every property optional; `null` clears `description`, `callbacks`
/// and `allowed_logout_urls` and is refused elsewhere.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClientBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub app_type: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub callbacks: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_logout_urls: Option<Option<Vec<String>>>,
    /// Cannot change on the tenant's Management API client.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub grant_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub token_endpoint_auth_method: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<bool>)]
    pub is_first_party: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<bool>)]
    pub token_endpoint_ip_header_trusted: Option<Option<bool>>,
}

impl UpdateClientBody {
    fn fields(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("description", self.description.is_some()),
            ("app_type", self.app_type.is_some()),
            ("callbacks", self.callbacks.is_some()),
            ("allowed_logout_urls", self.allowed_logout_urls.is_some()),
            ("grant_types", self.grant_types.is_some()),
            ("token_endpoint_auth_method", self.token_endpoint_auth_method.is_some()),
            ("is_first_party", self.is_first_party.is_some()),
            ("token_endpoint_ip_header_trusted", self.token_endpoint_ip_header_trusted.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, present)| present.then_some(f))
        .collect()
    }

    /// Apply the patch to `c`. Changing `app_type` does not reset grant types or the authentication
    /// method (as in Auth0); the combination is checked afterwards.
    fn apply(self, c: &mut Client) -> Result<(), ApiError> {
        fn required<T>(prop: &str, v: Option<T>) -> Result<T, ApiError> {
            v.ok_or_else(|| null_refused(prop))
        }
        if let Some(v) = self.name {
            c.name = parse_name(required("name", v)?)?;
        }
        if let Some(v) = self.description {
            c.description = parse_description(v.unwrap_or_default())?;
        }
        if let Some(v) = self.app_type {
            c.app_type = parse_app_type(&required("app_type", v)?)?.to_owned();
        }
        if let Some(v) = self.callbacks {
            c.callbacks = parse_urls("callbacks", v.unwrap_or_default())?;
        }
        if let Some(v) = self.allowed_logout_urls {
            c.allowed_logout_urls = parse_urls("allowed_logout_urls", v.unwrap_or_default())?;
        }
        if let Some(v) = self.grant_types {
            c.grant_types = parse_grant_types(required("grant_types", v)?)?;
        }
        if let Some(v) = self.token_endpoint_auth_method {
            c.token_endpoint_auth_method = parse_auth_method(&required("token_endpoint_auth_method", v)?)?.to_owned();
        }
        if let Some(v) = self.is_first_party {
            c.is_first_party = required("is_first_party", v)?;
        }
        if let Some(v) = self.token_endpoint_ip_header_trusted {
            c.token_endpoint_ip_header_trusted = required("token_endpoint_ip_header_trusted", v)?;
        }
        check_combination(c)
    }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// Update a client: given properties replace the stored ones.
#[utoipa::path(patch, path = "/clients/{id}", tag = "Clients", params(("id" = String, Path, description = "client_id")),
    request_body = UpdateClientBody,
    responses((status = 200, body = ClientSchema), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:clients"])))]
pub async fn update_client(
    State(state): State<AppState>,
    auth: Authorized<UpdateClients>,
    Path(path): Path<ClientPath>,
    ApiJson(body): ApiJson<UpdateClientBody>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let id = parse_client_id(&path.id)?;
    let store = &auth.tenant.store;
    let mut client = store.client(&id).await?.ok_or_else(not_found_client)?;
    // The Management API client keeps its grant types (the same set, in any order, is no change).
    if client.is_management
        && let Some(Some(grants)) = &body.grant_types
        && !same_set(grants, &client.grant_types)
    {
        record_failure(&state, &auth, "Update a Client").await;
        return Err(management_protected("given other grant types"));
    }
    let fields = body.fields();
    body.apply(&mut client)?;
    let mut ev = api_event(&auth, LogType::Sapi, "Update a Client");
    ev.details = json!({"client_id": client.client_id, "fields": fields});
    let updated = store.update_client(&client, &ev).await;
    // Forgotten after the write, so the next request on this node reads the changed client.
    auth.tenant.forget_client(&client.client_id);
    if !updated? {
        return Err(not_found_client());
    }
    Ok(Json(client_json(&client, None)).into_response())
}

/// Delete a client; its grants go with it and its refresh tokens stop working.
#[utoipa::path(delete, path = "/clients/{id}", tag = "Clients", params(("id" = String, Path, description = "client_id")),
    responses((status = 204, description = "Deleted (or did not exist)"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "Insufficient scope, or the Management API client")),
    security(("bearer" = ["delete:clients"])))]
pub async fn delete_client(
    State(state): State<AppState>,
    auth: Authorized<DeleteClients>,
    Path(path): Path<ClientPath>,
) -> Result<StatusCode, ApiError> {
    machine_only(&auth)?;
    let Ok(id) = ClientId::parse(&path.id) else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let store = &auth.tenant.store;
    let Some(client) = store.client(&id).await? else {
        return Ok(StatusCode::NO_CONTENT);
    };
    if client.is_management {
        record_failure(&state, &auth, "Delete a Client").await;
        return Err(management_protected("deleted"));
    }
    let mut ev = api_event(&auth, LogType::Sapi, "Delete a Client");
    ev.details = json!({"client_id": client.client_id, "client_name": client.name});
    store.delete_client(&id, &ev).await?;
    auth.tenant.forget_client(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// Replace a client's secret. The new secret is in this response only; the old one stops working
/// at once.
#[utoipa::path(post, path = "/clients/{id}/rotate-secret", tag = "Clients", params(("id" = String, Path, description = "client_id")),
    responses((status = 200, body = ClientSchema, description = "The client, with its new secret (shown once)"),
              (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:client_keys", "update:clients"])))]
pub async fn rotate_secret(auth: Authorized<RotateClientSecrets>, Path(path): Path<ClientPath>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let id = parse_client_id(&path.id)?;
    let store = &auth.tenant.store;
    let mut client = store.client(&id).await?.ok_or_else(not_found_client)?;
    let secret = new_client_secret();
    client.secret_hash = hash_secret(&secret);
    let mut ev = api_event(&auth, LogType::Sapi, "Rotate a Client Secret");
    ev.details = json!({"client_id": client.client_id});
    let updated = store.update_client(&client, &ev).await;
    // Forgotten after the write, so the next request on this node reads the changed client.
    auth.tenant.forget_client(&client.client_id);
    if !updated? {
        return Err(not_found_client());
    }
    Ok(Json(client_json(&client, Some(&secret))).into_response())
}

// ---- OpenAPI-only schemas ----

use super::users::ErrorBody;

/// An application (OAuth client).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ClientSchema {
    #[schema(example = "Zq3xAqX9b1cT0c4eWjvR8mN2pL6sK5yH")]
    client_id: String,
    name: String,
    description: String,
    #[schema(example = "regular_web")]
    app_type: String,
    callbacks: Vec<String>,
    allowed_logout_urls: Vec<String>,
    grant_types: Vec<String>,
    #[schema(example = "client_secret_post")]
    token_endpoint_auth_method: String,
    is_first_party: bool,
    /// May send the end user's address in `auth0-forwarded-for` (confidential clients only).
    token_endpoint_ip_header_trusted: bool,
    /// Only in the responses of `POST /clients` and `POST /clients/{id}/rotate-secret`.
    client_secret: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for ok in [
            "https://app.example.com/callback",
            "http://localhost:3000/cb?x=1",
            "HTTPS://Example.com",
            "https://*.example.com/cb",
        ] {
            assert!(parse_url("callbacks", ok).is_ok(), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "JaVaScRiPt:alert(1)",
            "/relative",
            "example.com/cb",
            "ftp://example.com",
            "https://example.com/cb#frag",
            "https://example.com/#",
            "https://user:pw@example.com/",
            " https://example.com",
            "https:\\\\evil.com",
            "https://exa mple.com",
            "https://",
            "",
        ] {
            assert!(parse_url("callbacks", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grants_and_defaults() {
        assert!(parse_grant_types(vec!["implicit".into()]).is_err());
        assert!(parse_grant_types(vec!["urn:custom".into()]).is_err());
        assert_eq!(
            parse_grant_types(vec!["password".into(), "password".into(), "refresh_token".into()]).ok(),
            Some(vec!["password".to_owned(), "refresh_token".to_owned()])
        );
        assert_eq!(default_grant_types("non_interactive"), vec!["client_credentials".to_owned()]);
        assert_eq!(default_grant_types("spa"), vec!["authorization_code".to_owned(), "refresh_token".to_owned()]);
        assert_eq!((default_auth_method("spa"), default_auth_method("regular_web")), ("none", "client_secret_post"));
    }

    #[test]
    fn names() {
        assert!(parse_name("My App".into()).is_ok());
        assert!(parse_name("é".repeat(255)).is_ok(), "length counts characters");
        for bad in [String::new(), "   ".into(), "a".repeat(256), "<script>".into(), "a\nb".into()] {
            assert!(parse_name(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paging() {
        let items: Vec<Value> = (0..7).map(|i| json!(i)).collect();
        let p = Paging::parse(Some("1"), Some("3"), Some("true")).expect("valid");
        assert_eq!(p.respond("xs", items.clone()), json!({"start": 3, "limit": 3, "length": 3, "total": 7, "xs": [3, 4, 5]}));
        let p = Paging::parse(Some("9"), Some("100"), None).expect("valid");
        assert_eq!(p.respond("xs", items), json!([]));
        assert!(Paging::parse(None, Some("101"), None).is_err());
        assert!(Paging::parse(Some("-1"), None, None).is_err());
    }
}

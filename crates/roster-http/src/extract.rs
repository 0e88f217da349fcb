//! Extractors: every request input is parsed here, so malformed input gets the surface's error shape
//! and handlers receive typed values.
//!
//! - [`ApiJson`] / [`ApiQuery`]: body and query parsing with Auth0's error bodies (415, 413, 400).
//! - [`Authorized<R>`]: the Management API principal — tenant resolved from the path, bearer token
//!   verified against *that* tenant's keys, issuer and audience, and at least one of `R::ANY_OF` held.
//!   A handler's signature therefore states its authorization.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use roster_auth::TokenError;
use roster_domain::scope::Scopes;
use roster_domain::{ClientId, UserId};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, OAuthError};
use crate::ratelimit::RateSlot;
use crate::state::AppState;
use crate::tenant::{ResolveError, TenantCtx};

/// The `{tenant}` path segment, resolved.
pub async fn resolve_tenant(parts: &mut Parts, state: &AppState) -> Result<Arc<TenantCtx>, ResolveError> {
    let params = RawPathParams::from_request_parts(parts, state).await.map_err(|_| ResolveError::Unknown)?;
    let name = params.iter().find(|(k, _)| *k == "tenant").map(|(_, v)| v.to_owned()).ok_or(ResolveError::Unknown)?;
    state.tenants.resolve(&name).await
}

fn resolve_error_to_api(e: ResolveError) -> ApiError {
    match e {
        ResolveError::Unknown => ApiError::new(StatusCode::NOT_FOUND, "Not Found", None),
        ResolveError::Store(s) => s.into(),
        ResolveError::Keys => {
            tracing::error!("tenant signing keys cannot be loaded");
            ApiError::internal()
        }
    }
}

/// The client's IP address: the socket's peer, or — only when that peer is one of the configured
/// trusted proxies — the address the proxies report (`X-Forwarded-For`, else `Forwarded: for=`), read
/// from the right, skipping the trusted proxies themselves. Headers from anyone else are ignored, so a
/// client cannot choose the address brute-force and throttling counters are keyed on.
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        Ok(Self(client_ip(peer, &parts.headers, &state.cfg.trusted_proxies)))
    }
}

/// See [`ClientIp`].
pub fn client_ip(
    peer: Option<std::net::IpAddr>,
    headers: &axum::http::HeaderMap,
    trusted: &[crate::attack::Cidr],
) -> Option<std::net::IpAddr> {
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|c| c.contains(ip));
    let peer = peer?;
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut hops: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .collect();
    if hops.is_empty() {
        hops = headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.eq_ignore_ascii_case("for").then(|| v.trim_matches('"').to_owned())
                })
            })
            .collect();
    }
    let parse = |s: &str| -> Option<std::net::IpAddr> {
        let s = s.trim();
        // `[v6]:port`, `v4:port`, `[v6]`, or a bare address.
        if let Some(rest) = s.strip_prefix('[') {
            return rest.split(']').next()?.parse().ok();
        }
        s.parse().ok().or_else(|| s.rsplit_once(':').and_then(|(a, _)| a.parse().ok()))
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse(hop) else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

impl ClientIp {
    pub fn to_string_opt(&self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}

/// The tenant of a Management API request (404 in the Management shape when unknown).
pub struct MgmtTenant(pub Arc<TenantCtx>);

impl FromRequestParts<AppState> for MgmtTenant {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        resolve_tenant(parts, state).await.map(Self).map_err(resolve_error_to_api)
    }
}

/// The tenant of an Authentication API request (404 in the OAuth shape when unknown).
pub struct AuthTenant(pub Arc<TenantCtx>);

impl FromRequestParts<AppState> for AuthTenant {
    type Rejection = OAuthError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OAuthError> {
        let t = resolve_tenant(parts, state).await.map_err(|e| match e {
            ResolveError::Unknown => OAuthError::new(StatusCode::NOT_FOUND, "not_found", "Unknown tenant"),
            ResolveError::Store(s) => s.into(),
            ResolveError::Keys => OAuthError::server_error(),
        })?;
        // Hosted pages are drawn in the tenant's look (read at most once a second per node).
        t.refresh_look().await;
        Ok(Self(t))
    }
}

/// Who is calling the Management API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A machine-to-machine client (`sub = {client_id}@clients`).
    Client(ClientId),
    /// An end user holding a user-scoped Management token (`sub = user_id`).
    User(UserId),
}

pub struct Principal {
    pub tenant: Arc<TenantCtx>,
    pub subject: Subject,
    pub scopes: std::sync::Arc<Scopes>,
    pub client_id: Option<ClientId>,
}

impl Principal {
    /// Object-level check: a user token reaches only its own user.
    pub fn may_access_user(&self, id: &UserId) -> bool {
        match &self.subject {
            Subject::Client(_) => true,
            Subject::User(own) => own == id,
        }
    }
}

/// The scopes that grant access to a route, by kind of caller: any one of `ANY_OF` for a machine
/// (client-credentials) token, any one of `USER` for a user-scoped token (empty: users are refused).
/// Keeping the lists apart means a machine token holding a `*:current_user` scope gains nothing.
pub trait Requirement {
    const ANY_OF: &'static [&'static str];
    const USER: &'static [&'static str] = &[];
}

macro_rules! requirement {
    ($($(#[$m:meta])* $name:ident => [$($s:literal),+ $(,)?] $(user [$($u:literal),+ $(,)?])?;)+) => {$(
        $(#[$m])*
        pub struct $name;
        impl Requirement for $name {
            const ANY_OF: &'static [&'static str] = &[$($s),+];
            $(const USER: &'static [&'static str] = &[$($u),+];)?
        }
    )+};
}

requirement! {
    /// Read users (a user token reads itself).
    ReadUsers => ["read:users"] user ["read:current_user"];
    CreateUsers => ["create:users"];
    /// Update users; the handler narrows which fields each scope may touch.
    UpdateUsers => ["update:users", "update:users_app_metadata"]
        user ["update:current_user_metadata", "create:current_user_metadata", "delete:current_user_metadata"];
    /// Machines only: a user deletes their own account through `DELETE /me`, which asks for the
    /// password and sends the confirmation.
    DeleteUsers => ["delete:users"];

    ReadClients => ["read:clients"];
    CreateClients => ["create:clients"];
    UpdateClients => ["update:clients"];
    DeleteClients => ["delete:clients"];
    /// Rotate a client secret: Auth0's `update:client_keys`, or `update:clients`.
    RotateClientSecrets => ["update:client_keys", "update:clients"];
    ReadConnections => ["read:connections"];
    CreateConnections => ["create:connections"];
    UpdateConnections => ["update:connections"];
    DeleteConnections => ["delete:connections"];

    ReadEmailProvider => ["read:email_provider"];
    CreateEmailProvider => ["create:email_provider"];
    UpdateEmailProvider => ["update:email_provider"];
    DeleteEmailProvider => ["delete:email_provider"];
    ReadEmailTemplates => ["read:email_templates"];
    CreateEmailTemplates => ["create:email_templates"];
    UpdateEmailTemplates => ["update:email_templates"];
    /// List queued and sent mail: mail administrators, or support staff who read users.
    ReadOutbox => ["read:email_provider", "read:users"];
    RetryOutbox => ["update:email_provider"];

    CreateUserTickets => ["create:user_tickets"];
    ReadAttackProtection => ["read:attack_protection"];
    UpdateAttackProtection => ["update:attack_protection"];
    ReadAnomalyBlocks => ["read:anomaly_blocks"];
    DeleteAnomalyBlocks => ["delete:anomaly_blocks"];
    ReadJobs => ["read:users", "create:users", "update:users"];
    ReadTenantSettings => ["read:tenant_settings"];
    UpdateTenantSettings => ["update:tenant_settings"];
    /// Auth0's branding scopes, or the tenant-settings ones (tenants created before branding existed).
    ReadBranding => ["read:branding", "read:tenant_settings"];
    UpdateBranding => ["update:branding", "update:tenant_settings"];
}

/// Routes of the `/me` API: end users' tokens only (no machine token has an account).
pub struct MeRead;
impl Requirement for MeRead {
    const ANY_OF: &'static [&'static str] = &[];
    const USER: &'static [&'static str] = &["read:current_user"];
}
pub struct MeUpdate;
impl Requirement for MeUpdate {
    const ANY_OF: &'static [&'static str] = &[];
    const USER: &'static [&'static str] = &["update:current_user_metadata"];
}
pub struct MeDelete;
impl Requirement for MeDelete {
    const ANY_OF: &'static [&'static str] = &[];
    const USER: &'static [&'static str] = &["delete:current_user"];
}

/// A verified Management API caller holding one of `R::ANY_OF`.
pub struct Authorized<R>(pub Principal, PhantomData<R>);

impl<R> std::ops::Deref for Authorized<R> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<R: Requirement + Send + Sync> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let tenant = resolve_tenant(parts, state).await.map_err(resolve_error_to_api)?;
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized("Missing authentication"));
        };
        let bad_format = || ApiError::new(StatusCode::BAD_REQUEST, "Bad HTTP authentication header format", None);
        let value = value.to_str().map_err(|_| bad_format())?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
            _ => return Err(bad_format()),
        };
        let verified = tenant.verify_management_token(token).map_err(|e| match e {
            TokenError::Expired => ApiError::unauthorized("Expired token received for JSON Web Token validation"),
            TokenError::Audience => ApiError::unauthorized("Bad audience"),
            _ => ApiError::unauthorized("Invalid token"),
        })?;
        let claims = &verified.claims;
        let subject = match claims.sub.strip_suffix("@clients") {
            Some(client) if claims.gty.as_deref() == Some("client-credentials") => {
                Subject::Client(ClientId::parse(client).map_err(|_| ApiError::unauthorized("Invalid token"))?)
            }
            _ => Subject::User(UserId::parse(&claims.sub).map_err(|_| ApiError::unauthorized("Invalid token"))?),
        };
        // Charge the tenant's rate limit only for authenticated callers: anonymous requests cannot
        // exhaust a tenant's budget.
        if let Some(slot) = parts.extensions.get::<RateSlot>() {
            let d = state.rate.check(tenant.name.as_str());
            let (allowed, retry) = (d.allowed, d.retry_after);
            slot.put(d);
            if !allowed {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Global limit has been reached",
                    Some("too_many_requests"),
                )
                .with_retry_after(retry));
            }
        }
        let scopes = verified.scopes.clone();
        let needed = match subject {
            Subject::Client(_) => R::ANY_OF,
            Subject::User(_) => R::USER,
        };
        if needed.is_empty() && R::ANY_OF.is_empty() {
            // A route for end users only (`/me`): a machine token has no "me".
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "This endpoint needs an end user's token",
                Some("insufficient_scope"),
            ));
        }
        if !scopes.contains_any(needed) {
            return Err(ApiError::insufficient_scope(if needed.is_empty() { R::ANY_OF } else { needed }));
        }
        let client_id = claims.azp.as_deref().and_then(|c| ClientId::parse(c).ok());
        Ok(Self(Principal { tenant, subject, scopes, client_id }, PhantomData))
    }
}

/// A JSON body: `Content-Type: application/json` (else 415), at most `max_body_bytes` (else 413),
/// valid JSON of the expected shape (else 400 `invalid_body`).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
                Some("invalid_body"),
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), state.cfg.max_body_bytes)
            .await
            .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large", Some("invalid_body")))?;
        let value = serde_json::from_slice::<T>(&bytes).map_err(|e| {
            let what = if e.is_data() { e.to_string() } else { "Invalid JSON".to_owned() };
            ApiError::bad_request(format!("Payload validation error: '{what}'."))
        })?;
        Ok(Self(value))
    }
}

/// Query parameters parsed into `T` (400 `invalid_query_string` otherwise).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<T>(q)
            .map(Self)
            .map_err(|e| ApiError::invalid_query(format!("Query validation error: '{e}'.")))
    }
}

#[cfg(test)]
mod client_ip_tests {
    use super::client_ip;
    use crate::attack::Cidr;
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let proxy = Some("10.0.0.5".parse().expect("ip"));
        let trusted = vec![Cidr::parse("10.0.0.0/24").expect("cidr")];
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.7")]);
        // From a trusted proxy: the rightmost address that is not a trusted proxy.
        assert_eq!(client_ip(proxy, &xff, &trusted), Some("203.0.113.9".parse().expect("ip")));
        // A client that prepends a fake hop does not win: the proxy appended the real address.
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.2")]);
        assert_eq!(client_ip(proxy, &spoofed, &trusted), Some("198.51.100.2".parse().expect("ip")));
        // From anyone else the headers are ignored.
        let stranger = Some("198.51.100.7".parse().expect("ip"));
        assert_eq!(client_ip(stranger, &xff, &trusted), stranger);
        assert_eq!(client_ip(proxy, &xff, &[]), proxy, "no trusted proxies configured");
        // RFC 7239, with quoted IPv6 and ports.
        let fwd = headers(&[("forwarded", "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.9")]);
        assert_eq!(client_ip(proxy, &fwd, &trusted), Some("2001:db8::1".parse().expect("ip")));
        // Garbage stops the walk at the last good hop.
        let junk = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(client_ip(proxy, &junk, &trusted), proxy);
    }
}

//! Creating a tenant: its database connection, signing key, Management API client (all management
//! scopes), default application, and the credentials shown once to the operator.
//!
//! Everything is built first and written in one transaction, so a failure leaves nothing behind.

use roster_auth::{NewKey, secret};
use roster_domain::scope::MANAGEMENT_SCOPES;
use roster_domain::{ClientId, ConnectionId, TenantId, TenantName, Timestamp};
use roster_store::{Client, ClientGrant, ConflictKind, Connection, NewTenant, SigningKey, Store, StoreError, Tenant};
use serde::Serialize;
use serde_json::json;

/// Name of every tenant's first database connection (Auth0's default).
pub const DEFAULT_CONNECTION: &str = "Username-Password-Authentication";

#[derive(Debug, Clone, Serialize)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
}

/// What `roster tenant create` prints (exactly one JSON object).
#[derive(Debug, Clone, Serialize)]
pub struct TenantCredentials {
    pub tenant: String,
    pub issuer: String,
    pub domain: String,
    pub management_audience: String,
    pub management_client: ClientCredentials,
    pub default_app: ClientCredentials,
    pub connection: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("tenant '{0}' already exists")]
    Exists(String),
    #[error("could not generate a signing key")]
    Key,
    #[error(transparent)]
    Store(StoreError),
}

/// The tenant's "domain" as Auth0 SDKs take it: public URL without scheme, plus `/t/{name}`.
pub fn domain_for(public_url: &str, name: &TenantName) -> String {
    let base = public_url.trim_end_matches('/');
    let without_scheme = base.split_once("://").map(|(_, rest)| rest).unwrap_or(base);
    format!("{without_scheme}/t/{name}")
}

/// Build everything a new tenant starts with.
pub fn build(name: TenantName, public_url: &str) -> Result<(NewTenant, TenantCredentials), ProvisionError> {
    let now = Timestamp::now();
    let issuer = roster_http::issuer_for(public_url, &name);
    let audience = format!("{issuer}api/v2/");
    let key = NewKey::generate_rs256().map_err(|_| ProvisionError::Key)?;
    let mgmt_id = ClientId::new_random();
    let mgmt_secret = secret::new_client_secret();
    let app_id = ClientId::new_random();
    let app_secret = secret::new_client_secret();
    let connection = Connection {
        id: ConnectionId::new_random(),
        name: DEFAULT_CONNECTION.into(),
        strategy: "auth0".into(),
        options: json!({ "requires_username": false, "disable_signup": false, "passwordPolicy": "nist" }),
        created_at: now,
    };
    let tenant = NewTenant {
        tenant: Tenant { id: TenantId::new_random(), name: name.clone(), created_at: now },
        keys: vec![SigningKey {
            kid: key.kid,
            alg: "RS256".into(),
            private_key: key.pkcs8,
            public_jwk: key.jwk,
            status: "current".into(),
            created_at: now,
        }],
        connections: vec![connection],
        clients: vec![
            Client {
                client_id: mgmt_id.clone(),
                name: "Roster Management API client".into(),
                secret_hash: secret::hash_secret(&mgmt_secret),
                app_type: "non_interactive".into(),
                is_management: true,
                grant_types: vec!["client_credentials".into()],
                callbacks: vec![],
                allowed_logout_urls: vec![],
                token_endpoint_auth_method: "client_secret_post".into(),
                is_first_party: true,
                token_endpoint_ip_header_trusted: false,
                description: "Machine-to-machine client of the Management API".into(),
                created_at: now,
            },
            Client {
                client_id: app_id.clone(),
                name: "Default App".into(),
                secret_hash: secret::hash_secret(&app_secret),
                app_type: "regular_web".into(),
                is_management: false,
                grant_types: vec![
                    "authorization_code".into(),
                    "refresh_token".into(),
                    "password".into(),
                    "http://auth0.com/oauth/grant-type/password-realm".into(),
                ],
                callbacks: vec![],
                allowed_logout_urls: vec![],
                token_endpoint_auth_method: "client_secret_post".into(),
                is_first_party: true,
                token_endpoint_ip_header_trusted: false,
                description: String::new(),
                created_at: now,
            },
        ],
        grants: vec![ClientGrant {
            id: format!("cgr_{}", roster_domain::secret::random_alphanumeric(16)),
            client_id: mgmt_id.clone(),
            audience: audience.clone(),
            scope: MANAGEMENT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        }],
    };
    let creds = TenantCredentials {
        tenant: name.to_string(),
        domain: domain_for(public_url, &name),
        issuer,
        management_audience: audience,
        management_client: ClientCredentials { client_id: mgmt_id.into_string(), client_secret: mgmt_secret },
        default_app: ClientCredentials { client_id: app_id.into_string(), client_secret: app_secret },
        connection: DEFAULT_CONNECTION.into(),
    };
    Ok((tenant, creds))
}

/// Build and store a tenant; returns the credentials to show once.
pub async fn create_tenant(store: &Store, name: TenantName, public_url: &str) -> Result<TenantCredentials, ProvisionError> {
    let (tenant, creds) = build(name.clone(), public_url)?;
    match store.create_tenant(&tenant).await {
        Ok(()) => Ok(creds),
        Err(StoreError::Conflict(ConflictKind::TenantName)) => Err(ProvisionError::Exists(name.to_string())),
        Err(e) => Err(ProvisionError::Store(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_and_issuer() {
        let n = TenantName::parse("acme").expect("valid");
        assert_eq!(domain_for("http://127.0.0.1:8080/", &n), "127.0.0.1:8080/t/acme");
        let (_, c) = build(n, "http://127.0.0.1:8080").expect("builds");
        assert_eq!(c.issuer, "http://127.0.0.1:8080/t/acme/");
        assert_eq!(c.management_audience, "http://127.0.0.1:8080/t/acme/api/v2/");
        assert_ne!(c.management_client.client_secret, c.default_app.client_secret);
    }
}

//! Resolving `/t/{tenant}/` to a tenant, with a short-lived cache.
//!
//! A request needs the tenant id, issuer, audience and parsed signing keys. Parsing keys costs
//! milliseconds, so resolved tenants are cached; an entry older than `REVALIDATE` is checked against
//! the database (one indexed read) and rebuilt only if the tenant or its key ids changed. Unknown names
//! are not cached, so a tenant created by `roster tenant create` on a running server is served by the
//! next request, and a deleted one stops being served within `REVALIDATE`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use roster_auth::jwt::{LEEWAY_SECS, StoredKey};
use roster_auth::{AccessClaims, KeySet, TokenError};
use roster_domain::{TenantId, TenantName};
use roster_store::{Store, StoreError, TenantStore};

/// How long a cached tenant is trusted before it is checked again.
pub const REVALIDATE: Duration = Duration::from_secs(2);

/// Everything a request needs to know about its tenant.
pub struct TenantCtx {
    pub id: TenantId,
    pub name: TenantName,
    /// `{public_url}/t/{name}/`
    pub issuer: String,
    /// `{issuer}api/v2/`
    pub management_audience: String,
    pub keys: KeySet,
    pub store: TenantStore,
    kids: Vec<String>,
    /// Management tokens already verified with these keys (see [`TenantCtx::verify_management_token`]).
    verified: Mutex<HashMap<Box<str>, VerifiedToken>>,
    /// Attack-protection settings by kind, read at most once per [`SETTINGS_TTL`] (see `attack.rs`).
    pub(crate) attack_settings: Mutex<HashMap<&'static str, (Instant, serde_json::Value)>>,
    /// Brute-force counter keys this node saw blocked, and until when it trusts that without asking
    /// the database again (see `attack::is_blocked`).
    pub(crate) blocked_pairs: Mutex<HashMap<String, Instant>>,
    /// Clients read in the last [`CLIENT_TTL`] (see [`TenantCtx::client`]).
    clients: Mutex<HashMap<roster_domain::ClientId, (Instant, roster_store::Client)>>,
    /// Grants (or their absence) of authenticated clients by audience, read in the last [`CLIENT_TTL`]
    /// (see [`TenantCtx::client_grant`]).
    grants: Mutex<HashMap<GrantKey, (Instant, Option<roster_store::ClientGrant>)>>,
    /// How hosted pages look (name, colours, logo), read at most once per [`SETTINGS_TTL`].
    look: Mutex<(Option<Instant>, Arc<Look>)>,
}

/// The tenant's look on hosted pages, from its settings (`friendly_name`, `/branding`).
#[derive(Debug, Clone)]
pub struct Look {
    /// The friendly name, or the tenant's name.
    pub name: String,
    /// `#rgb`/`#rrggbb` (validated when stored).
    pub primary: String,
    pub background: String,
    /// An https URL.
    pub logo: Option<String>,
}

impl Look {
    fn plain(name: &str) -> Self {
        Self { name: name.to_owned(), primary: "#0b5cad".into(), background: "#f4f5f7".into(), logo: None }
    }
}

/// How long a node trusts a client it read (secret, grant types, callbacks): a change made on another
/// node applies within this time; on the node that made it, at once ([`TenantCtx::forget_client`]).
pub const CLIENT_TTL: Duration = Duration::from_secs(1);

/// Most clients remembered per tenant; the map is emptied when full.
const CLIENT_CAPACITY: usize = 10_000;

/// How long a node refuses a pair it saw blocked without reading the counter again. An unblock made
/// on another node applies within this time; on the node that made it, at once.
pub const BLOCKED_TTL: Duration = Duration::from_millis(500);

/// How long a node trusts the attack-protection settings it read (a change made on another node
/// applies within this time; on the same node at once).
pub const SETTINGS_TTL: Duration = Duration::from_secs(1);

/// A client and an audience.
type GrantKey = (roster_domain::ClientId, String);

/// A verified token (whole text) and its claims, keyed by its signature segment.
type VerifiedToken = (Box<str>, Arc<Verified>);

/// The claims of a verified Management token, with its scopes parsed once.
pub struct Verified {
    pub claims: AccessClaims,
    pub scopes: Arc<roster_domain::scope::Scopes>,
}

/// Most verified tokens remembered per tenant; the map is emptied when full (tokens are re-verified).
const VERIFIED_CAPACITY: usize = 10_000;

impl TenantCtx {
    /// A client of this tenant, read from the database at most once per [`CLIENT_TTL`] per node:
    /// every token request needs its client, and a database read costs more than the rest of a
    /// refused attempt. Unknown ids are not remembered (random ids cannot fill the map).
    pub async fn client(&self, id: &roster_domain::ClientId) -> Result<Option<roster_store::Client>, StoreError> {
        let hit =
            self.clients.lock().ok().and_then(|m| m.get(id).filter(|(at, _)| at.elapsed() < CLIENT_TTL).map(|(_, c)| c.clone()));
        if hit.is_some() {
            return Ok(hit);
        }
        let found = self.store.client(id).await?;
        if let (Some(c), Ok(mut m)) = (&found, self.clients.lock()) {
            if m.len() >= CLIENT_CAPACITY {
                m.clear();
            }
            m.insert(id.clone(), (Instant::now(), c.clone()));
        }
        Ok(found)
    }

    /// The grant of `client` for `audience`, read from the database at most once per [`CLIENT_TTL`]
    /// per node, as clients are: every client-credentials token needs it. Ask only for a client that
    /// authenticated (so the map holds what real clients ask for); a missing grant is remembered too.
    pub async fn client_grant(
        &self,
        client: &roster_domain::ClientId,
        audience: &str,
    ) -> Result<Option<roster_store::ClientGrant>, StoreError> {
        let key = (client.clone(), audience.to_owned());
        let hit =
            self.grants.lock().ok().and_then(|m| m.get(&key).filter(|(at, _)| at.elapsed() < CLIENT_TTL).map(|(_, g)| g.clone()));
        if let Some(g) = hit {
            return Ok(g);
        }
        let found = self.store.client_grant(client, audience).await?;
        if let Ok(mut m) = self.grants.lock() {
            if m.len() >= CLIENT_CAPACITY {
                m.clear();
            }
            m.insert(key, (Instant::now(), found.clone()));
        }
        Ok(found)
    }

    /// How hosted pages look now (as last read by [`TenantCtx::refresh_look`]).
    pub fn look(&self) -> Arc<Look> {
        match self.look.lock() {
            Ok(l) => l.1.clone(),
            Err(_) => Arc::new(Look::plain(self.name.as_str())),
        }
    }

    /// Read the look from the settings when the copy this node has is older than [`SETTINGS_TTL`]
    /// (a failed read keeps the old copy).
    pub async fn refresh_look(&self) {
        let fresh = self.look.lock().ok().and_then(|l| l.0).is_some_and(|at| at.elapsed() < SETTINGS_TTL);
        if fresh {
            return;
        }
        let Ok(settings) = self.store.tenant_settings().await else { return };
        let friendly = settings.get("friendly_name").and_then(serde_json::Value::as_str).filter(|s| !s.is_empty());
        let branding =
            roster_domain::account::Branding::parse(settings.get("branding").unwrap_or(&serde_json::Value::Null), friendly)
                .unwrap_or_else(|_| roster_domain::account::Branding {
                    friendly_name: friendly.map(str::to_owned),
                    logo_url: None,
                    primary: "#0b5cad".into(),
                    page_background: "#f4f5f7".into(),
                });
        let look = Look {
            name: branding.friendly_name.unwrap_or_else(|| self.name.as_str().to_owned()),
            primary: branding.primary,
            background: branding.page_background,
            logo: branding.logo_url,
        };
        if let Ok(mut l) = self.look.lock() {
            *l = (Some(Instant::now()), Arc::new(look));
        }
    }

    /// Forget a client this node changed or deleted, and its grants, so its next request reads them
    /// again.
    pub fn forget_client(&self, id: &roster_domain::ClientId) {
        if let Ok(mut m) = self.clients.lock() {
            m.remove(id);
        }
        if let Ok(mut m) = self.grants.lock() {
            m.retain(|(client, _), _| client != id);
        }
    }

    /// Verify a Management API access token. A token whose exact bytes were verified before by this
    /// key set is not verified again (an RSA verification costs more than the rest of a request); its
    /// expiry is still checked on every use. The cache lives and dies with this key set, so a key
    /// rotation or a deleted tenant invalidates it.
    pub fn verify_management_token(&self, token: &str) -> Result<Arc<Verified>, TokenError> {
        let now = roster_domain::Timestamp::now().seconds();
        // Keyed by the signature segment (short, unforgeable); the whole token must match on a hit.
        let key = token.rsplit('.').next().unwrap_or(token);
        let hit = self.verified.lock().ok().and_then(|m| m.get(key).filter(|(full, _)| &**full == token).map(|(_, c)| c.clone()));
        if let Some(c) = hit {
            if now > c.claims.exp + LEEWAY_SECS as i64 {
                return Err(TokenError::Expired);
            }
            return Ok(c);
        }
        let claims: AccessClaims = self.keys.verify(token, &self.issuer, &self.management_audience)?;
        let scopes = Arc::new(roster_domain::scope::Scopes::parse(&claims.scope));
        let claims = Arc::new(Verified { claims, scopes });
        if let Ok(mut m) = self.verified.lock() {
            if m.len() >= VERIFIED_CAPACITY {
                m.clear();
            }
            m.insert(key.into(), (token.into(), claims.clone()));
        }
        Ok(claims)
    }
}

struct Entry {
    ctx: Arc<TenantCtx>,
    checked: Instant,
}

pub struct TenantCache {
    store: Store,
    public_url: String,
    entries: RwLock<HashMap<String, Entry>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown tenant")]
    Unknown,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("tenant keys are unusable")]
    Keys,
}

/// Issuer of a tenant: `{public_url}/t/{name}/`.
pub fn issuer_for(public_url: &str, name: &TenantName) -> String {
    format!("{}/t/{}/", public_url.trim_end_matches('/'), name)
}

impl TenantCache {
    pub fn new(store: Store, public_url: String) -> Self {
        Self { store, public_url, entries: RwLock::new(HashMap::new()) }
    }

    pub async fn resolve(&self, raw_name: &str) -> Result<Arc<TenantCtx>, ResolveError> {
        if let Some(ctx) = self.fresh(raw_name) {
            return Ok(ctx);
        }
        let name = TenantName::parse(raw_name).map_err(|_| ResolveError::Unknown)?;
        let Some(tenant) = self.store.tenant_by_name(&name).await? else {
            self.entries.write().map(|mut m| m.remove(raw_name)).ok();
            return Err(ResolveError::Unknown);
        };
        let tstore = self.store.tenant(tenant.id.clone());
        let keys = tstore.signing_keys().await?;
        let kids: Vec<String> = keys.iter().map(|k| format!("{}:{}", k.kid, k.status)).collect();
        // Reuse the parsed keys when nothing changed since the last check.
        let reusable = self
            .entries
            .read()
            .ok()
            .and_then(|m| m.get(raw_name).filter(|e| e.ctx.id == tenant.id && e.ctx.kids == kids).map(|e| e.ctx.clone()));
        let ctx = match reusable {
            Some(ctx) => ctx,
            None => {
                let keyset = KeySet::from_stored(keys.iter().map(|k| StoredKey {
                    kid: &k.kid,
                    alg: &k.alg,
                    pkcs8: &k.private_key,
                    current: k.status == "current",
                }))
                .map_err(|_| ResolveError::Keys)?;
                let issuer = issuer_for(&self.public_url, &name);
                Arc::new(TenantCtx {
                    id: tenant.id.clone(),
                    management_audience: format!("{issuer}api/v2/"),
                    issuer,
                    name,
                    keys: keyset,
                    store: tstore,
                    kids,
                    verified: Mutex::new(HashMap::new()),
                    attack_settings: Mutex::new(HashMap::new()),
                    blocked_pairs: Mutex::new(HashMap::new()),
                    clients: Mutex::new(HashMap::new()),
                    grants: Mutex::new(HashMap::new()),
                    look: Mutex::new((None, Arc::new(Look::plain(tenant.name.as_str())))),
                })
            }
        };
        if let Ok(mut m) = self.entries.write() {
            m.insert(raw_name.to_owned(), Entry { ctx: ctx.clone(), checked: Instant::now() });
        }
        Ok(ctx)
    }

    fn fresh(&self, name: &str) -> Option<Arc<TenantCtx>> {
        let m = self.entries.read().ok()?;
        let e = m.get(name)?;
        (e.checked.elapsed() < REVALIDATE).then(|| e.ctx.clone())
    }
}

//! The outbox relay: runs in every `roster serve` node, leases due outbox rows, renders them, hands
//! them to the tenant's transport (or the server's), and records the outcome.
//!
//! Guarantees: a mail is a row committed with the change that caused it, so it is never lost; rows are
//! leased (one atomic UPDATE, `SKIP LOCKED` on PostgreSQL), so two nodes never hold the same row; every
//! row carries a stable `Message-ID`, so the rare second send after a crash between "sent" and
//! "recorded" is recognizable as the same mail; transient failures retry with exponential backoff and
//! jitter up to `max_attempts`, then the row is `dead` (listed for admins, retried on demand). At
//! shutdown, leases on rows not yet attempted are handed back.
//!
//! Never log a recipient's link or a rendered body; log lines name the row, the template and the
//! destination (file or server).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use rand::Rng;
use roster_auth::MasterKey;
use roster_domain::{ClientId, TenantId, Timestamp, UserId};
use roster_store::{ClaimedMail, Delivery, EmailProvider, OutboxMessage, Store, TenantStore};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::provider;
use crate::template::{CustomTemplate, Renderer, TemplateName};
use crate::transport::Transport;

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// How often to look for due rows when nothing woke the relay.
    pub poll_interval: Duration,
    /// How long a claimed row stays ours; longer than `send_timeout`.
    pub lease: Duration,
    pub send_timeout: Duration,
    /// Attempts before a row is `dead`.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to `retry_max`, with jitter.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Rows claimed per round trip, and sent at once.
    pub batch: u32,
    pub concurrency: usize,
    /// The right-hand side of `Message-ID`s (the public host).
    pub message_id_domain: String,
    /// The server's `From` when neither the template nor the tenant's provider names one.
    pub default_from: String,
}

/// Where a sealed one-time link in an outbox row may be opened: this tenant, this row.
fn link_context(tenant: &TenantId, message_id: &str) -> String {
    format!("mail-link:{}:{message_id}", tenant.as_str())
}

/// Put a one-time link into a queued mail, sealed with the master key: the database never holds the
/// link in clear, and the relay drops it once the mail is delivered.
pub fn attach_link(key: &MasterKey, tenant: &TenantId, m: &mut OutboxMessage, url: &str) {
    let sealed = key.seal(&link_context(tenant, &m.id), url.as_bytes());
    if let Value::Object(map) = &mut m.payload {
        map.insert("url_sealed".into(), Value::String(sealed));
    } else {
        m.payload = json!({ "url_sealed": sealed });
    }
}

struct CachedProvider {
    updated_at: Timestamp,
    transport: Arc<Transport>,
}

pub struct Relay {
    store: Store,
    renderer: Arc<Renderer>,
    key: MasterKey,
    global: Arc<Transport>,
    cfg: RelayConfig,
    /// Who holds the leases this relay takes (random per process).
    owner: String,
    providers: Mutex<HashMap<TenantId, CachedProvider>>,
    tenant_names: Mutex<HashMap<TenantId, String>>,
}

impl Relay {
    pub fn new(store: Store, renderer: Arc<Renderer>, key: MasterKey, global: Transport, cfg: RelayConfig) -> Arc<Self> {
        Arc::new(Self {
            store,
            renderer,
            key,
            global: Arc::new(global),
            cfg,
            owner: format!("relay_{}", roster_domain::secret::random_alphanumeric(16)),
            providers: Mutex::new(HashMap::new()),
            tenant_names: Mutex::new(HashMap::new()),
        })
    }

    /// Deliver until `stop` turns true; then finish the mail being sent and hand back the rest.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        tracing::info!(transport = %self.global.describe(), "mail relay started");
        let wake = self.store.mail_queued();
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                break;
            }
            let claimed = match self.store.claim_outbox(&self.owner, Timestamp::now(), self.cfg.lease, self.cfg.batch).await {
                Ok(c) => {
                    failures = 0;
                    c
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::warn!(error = %e, "mail relay cannot read the outbox; will retry");
                    }
                    Vec::new()
                }
            };
            let full = claimed.len() >= self.cfg.batch as usize;
            if !claimed.is_empty() {
                self.deliver_batch(claimed, &stop).await;
            }
            if full {
                continue;
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(self.cfg.poll_interval) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!("mail relay stopped");
    }

    async fn deliver_batch(self: &Arc<Self>, claimed: Vec<ClaimedMail>, stop: &watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.cfg.concurrency.max(1)));
        let mut running = JoinSet::new();
        let mut unstarted = Vec::new();
        for m in claimed {
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            if *stop.borrow() {
                unstarted.push((m.tenant, m.message.id));
                continue;
            }
            let this = self.clone();
            running.spawn(async move {
                this.deliver(m).await;
                drop(permit);
            });
        }
        while running.join_next().await.is_some() {}
        match self.store.release_outbox(&self.owner, &unstarted).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "mail relay handed back unsent rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "mail relay could not hand back its leases; they expire on their own"),
        }
    }

    /// One attempt at one row, and its outcome recorded.
    async fn deliver(&self, m: ClaimedMail) {
        let tenant = m.tenant.clone();
        let id = m.message.id.clone();
        let template = m.message.template.clone();
        let outcome = match self.attempt(&m).await {
            Ok(Attempt::Sent(dest)) => {
                tracing::info!(tenant = %tenant.as_str(), mail = %id, template = %template, to = %dest, "mail delivered");
                Delivery::Delivered
            }
            Ok(Attempt::Suppressed) => Delivery::Suppressed { reason: format!("the {template} template is disabled") },
            Err(Failure { permanent, message }) => {
                let give_up = permanent || m.attempts >= i64::from(self.cfg.max_attempts);
                tracing::warn!(tenant = %tenant.as_str(), mail = %id, template = %template, attempt = m.attempts,
                    permanent, error = %message, "mail not delivered{}", if give_up { "; giving up" } else { "; will retry" });
                if give_up {
                    Delivery::Dead { error: message }
                } else {
                    Delivery::Retry { error: message, at: self.next_attempt(m.attempts) }
                }
            }
        };
        match self.store.finish_outbox(&tenant, &id, &self.owner, &outcome, Timestamp::now()).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(mail = %id, "mail relay lost its lease before recording the outcome"),
            // The lease runs out and another attempt follows; the stable Message-ID marks it as the same mail.
            Err(e) => tracing::warn!(mail = %id, error = %e, "mail relay could not record the outcome"),
        }
    }

    /// Exponential backoff with "equal jitter": between half and all of `base·2^(n-1)`, capped.
    fn next_attempt(&self, attempts: i64) -> Timestamp {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let base = self.cfg.retry_base.as_millis() as u64;
        let full = base.saturating_mul(1u64 << exp).min(self.cfg.retry_max.as_millis() as u64).max(1);
        let delay = full / 2 + rand::rng().random_range(0..=full / 2);
        Timestamp::from_millis(Timestamp::now().millis() + delay as i64)
    }

    async fn attempt(&self, m: &ClaimedMail) -> Result<Attempt, Failure> {
        let ts = self.store.tenant(m.tenant.clone());
        let name = TemplateName::parse(&m.message.template)
            .ok_or_else(|| Failure::permanent(format!("unknown template '{}'", m.message.template)))?;
        let custom = ts.email_template(name.as_str()).await.map_err(Failure::store)?;
        if custom.as_ref().is_some_and(|t| !t.enabled) {
            return Ok(Attempt::Suppressed);
        }
        let provider = ts.email_provider().await.map_err(Failure::store)?.filter(|p| p.enabled);
        let vars = self.variables(&ts, &m.message, provider.as_ref()).await?;
        let custom = custom.map(|t| CustomTemplate { body: t.body, subject: t.subject, from: t.from });
        let rendered = self
            .renderer
            .render(name, custom.as_ref(), &vars)
            .map_err(|e| Failure::permanent(format!("the template does not render: {e}")))?;
        let from_text = rendered
            .from
            .filter(|f| !f.trim().is_empty())
            .or_else(|| provider.as_ref().and_then(|p| p.default_from_address.clone()).filter(|f| !f.is_empty()))
            .unwrap_or_else(|| self.cfg.default_from.clone());
        let mut from: Mailbox =
            from_text.parse().map_err(|_| Failure::permanent("the sender address is not a valid mailbox".into()))?;
        if from.name.is_none() {
            let friendly = vars["friendly_name"].as_str().unwrap_or_default();
            from.name = Some(crate::header_text(friendly)).filter(|n| !n.is_empty());
        }
        let to: Mailbox = m
            .message
            .recipient
            .parse::<lettre::Address>()
            .map(|a| Mailbox::new(None, a))
            .map_err(|_| Failure::permanent("the recipient address is not valid".into()))?;
        let msg = Message::builder()
            .message_id(Some(format!("<{}@{}>", m.message.id, self.cfg.message_id_domain)))
            .from(from)
            .to(to)
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html))
            .map_err(|_| Failure::permanent("the message could not be assembled".into()))?;
        let transport = match &provider {
            Some(p) => self.tenant_transport(&m.tenant, p)?,
            None => self.global.clone(),
        };
        let file_id = format!("{}-{}", m.message.created_at.millis(), m.message.id);
        match tokio::time::timeout(self.cfg.send_timeout, transport.send(&file_id, &msg)).await {
            Ok(Ok(dest)) => Ok(Attempt::Sent(dest)),
            Ok(Err(e)) => Err(Failure { permanent: e.permanent, message: e.message }),
            Err(_) => Err(Failure { permanent: false, message: "the mail server did not answer in time".into() }),
        }
    }

    /// The tenant's SMTP transport, rebuilt only when its provider settings change (so its
    /// connection pool survives between mails).
    fn tenant_transport(&self, tenant: &TenantId, p: &EmailProvider) -> Result<Arc<Transport>, Failure> {
        let mut cache = self.providers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(tenant).filter(|c| c.updated_at == p.updated_at) {
            return Ok(c.transport.clone());
        }
        let settings = provider::smtp_settings(&self.key, tenant, p).map_err(|e| Failure::permanent(e.0))?;
        let transport = Arc::new(Transport::smtp(&settings, self.cfg.send_timeout).map_err(|e| Failure::permanent(e.0))?);
        cache.insert(tenant.clone(), CachedProvider { updated_at: p.updated_at, transport: transport.clone() });
        Ok(transport)
    }

    async fn tenant_name(&self, tenant: &TenantId) -> Result<String, Failure> {
        if let Some(n) = self.tenant_names.lock().unwrap_or_else(|e| e.into_inner()).get(tenant) {
            return Ok(n.clone());
        }
        let all = self.store.list_tenants().await.map_err(Failure::store)?;
        let mut names = self.tenant_names.lock().unwrap_or_else(|e| e.into_inner());
        for t in all {
            names.insert(t.id, t.name.as_str().to_owned());
        }
        Ok(names.get(tenant).cloned().unwrap_or_default())
    }

    /// Auth0's Liquid variables for one mail: the user as stored now (or as the row describes them,
    /// when the account is gone), the application, the tenant, and the row's own values.
    async fn variables(&self, ts: &TenantStore, m: &OutboxMessage, provider: Option<&EmailProvider>) -> Result<Value, Failure> {
        let tenant = self.tenant_name(ts.tenant_id()).await?;
        let stored = match &m.user_id {
            Some(id) => ts.user(id).await.map_err(Failure::store)?,
            None => None,
        };
        let mut user = match stored.map(std::sync::Arc::unwrap_or_clone) {
            Some(u) => json!({
                "user_id": u.user_id.as_str(), "email": u.email.as_ref().map(|e| e.to_string()), "email_verified": u.email_verified,
                "name": u.name, "nickname": u.nickname, "given_name": u.given_name, "family_name": u.family_name,
                "picture": u.picture, "user_metadata": u.user_metadata.into_value(), "app_metadata": u.app_metadata.into_value(),
            }),
            None => {
                m.payload.get("user").cloned().unwrap_or_else(|| json!({ "user_id": m.user_id.as_ref().map(UserId::as_str) }))
            }
        };
        if user.get("email").is_none_or(Value::is_null) {
            user["email"] = Value::String(m.recipient.clone());
        }
        if let Some(ip) = m.payload.get("source_ip") {
            user["source_ip"] = ip.clone();
        }
        let client_id = m.payload.get("client_id").and_then(Value::as_str).and_then(|c| ClientId::parse(c).ok());
        let application = match client_id {
            Some(id) => match ts.client(&id).await.map_err(Failure::store)? {
                Some(c) => json!({ "name": c.name, "clientID": c.client_id.as_str(), "client_metadata": {} }),
                None => json!({}),
            },
            None => json!({}),
        };
        let url = match m.payload.get("url_sealed").and_then(Value::as_str) {
            Some(sealed) => Some(
                self.key
                    .open_str(&link_context(ts.tenant_id(), &m.id), sealed)
                    .map_err(|e| Failure::permanent(format!("the mail's link cannot be opened: {e}")))?,
            ),
            None => None,
        };
        // The tenant's own name and support contacts (`/api/v2/tenants/settings`) when it set them.
        let settings = ts.tenant_settings().await.map_err(Failure::store)?;
        let text = |k: &str| settings.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let friendly_name = text("friendly_name").unwrap_or_else(|| tenant.clone());
        let support_email = text("support_email").or_else(|| provider.and_then(|p| p.default_from_address.clone()));
        let mut vars = json!({
            "user": user,
            "application": application,
            "connection": { "name": m.payload.get("connection").cloned().unwrap_or(Value::Null) },
            "tenant": tenant,
            "friendly_name": friendly_name,
            "support_email": support_email,
            "support_url": text("support_url"),
            "request_language": m.payload.get("request_language").cloned().unwrap_or(Value::Null),
            "url": url,
            "new_email": m.payload.get("new_email").cloned().unwrap_or(Value::Null),
        });
        if let Some(Value::Object(extra)) = m.payload.get("vars") {
            for (k, v) in extra {
                if !matches!(k.as_str(), "url" | "user") {
                    vars[k] = v.clone();
                }
            }
        }
        Ok(vars)
    }
}

enum Attempt {
    Sent(String),
    Suppressed,
}

struct Failure {
    permanent: bool,
    message: String,
}

impl Failure {
    fn permanent(message: String) -> Self {
        Self { permanent: true, message }
    }
    fn store(e: roster_store::StoreError) -> Self {
        Self { permanent: false, message: format!("database: {e}") }
    }
}

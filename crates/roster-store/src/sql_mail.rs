// The mail repository's SQL: the outbox queue the relays lease from, and each tenant's templates and
// provider. Included after `sql_common.rs` by `sqlite.rs` and `postgres.rs`, which also define
// `SKIP_LOCKED` (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent relays on several nodes pass over
// each other's rows instead of waiting; SQLite: empty, its writers are serialized anyway).

use crate::model::{ClaimedMail, Delivery, EmailProvider, EmailTemplate, OutboxFilter};
use crate::repo::MailRepo;

const OUTBOX_COLS: &str =
    "id, user_id, template, recipient, payload, status, attempts, created_at, last_error, next_attempt_at, delivered_at";

fn outbox_message(r: &DbRow) -> Result<OutboxMessage> {
    Ok(OutboxMessage {
        id: r.try_get("id")?,
        user_id: r.try_get::<Option<String>, _>("user_id")?.map(UserId::from_trusted),
        template: r.try_get("template")?,
        recipient: r.try_get("recipient")?,
        payload: r.try_get::<Json<Value>, _>("payload")?.0,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
    })
}

fn outbox_record(r: &DbRow) -> Result<OutboxRecord> {
    Ok(OutboxRecord {
        message: outbox_message(r)?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        next_attempt_at: Timestamp::from_millis(r.try_get("next_attempt_at")?),
        delivered_at: r.try_get::<Option<i64>, _>("delivered_at")?.map(Timestamp::from_millis),
    })
}

const TEMPLATE_COLS: &str = "name, body, sender, subject, syntax, result_url, url_lifetime_secs, include_email_in_redirect, \
     enabled, updated_at";

fn email_template(r: &DbRow) -> Result<EmailTemplate> {
    Ok(EmailTemplate {
        name: r.try_get("name")?,
        body: r.try_get("body")?,
        from: r.try_get("sender")?,
        subject: r.try_get("subject")?,
        syntax: r.try_get("syntax")?,
        result_url: r.try_get("result_url")?,
        url_lifetime_secs: r.try_get("url_lifetime_secs")?,
        include_email_in_redirect: r.try_get("include_email_in_redirect")?,
        enabled: r.try_get("enabled")?,
        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
    })
}

fn email_provider(r: &DbRow) -> Result<EmailProvider> {
    Ok(EmailProvider {
        name: r.try_get("name")?,
        enabled: r.try_get("enabled")?,
        default_from_address: r.try_get("default_from_address")?,
        credentials: r.try_get("credentials")?,
        settings: r.try_get::<Json<Value>, _>("settings")?.0,
        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
    })
}

#[async_trait]
impl MailRepo for SqlBackend {
    async fn claim_outbox(&self, owner: &str, now: Timestamp, lease_ms: i64, limit: u32) -> Result<Vec<ClaimedMail>> {
        // Most polls find nothing due: a read says so without taking the write lock, which the
        // group-commit writer of SQLite holds nearly all the time under load.
        let due = sqlx::query(
            "SELECT 1 FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND (lease_until IS NULL OR lease_until <= $1) LIMIT 1",
        )
        .bind(now.millis())
        .fetch_optional(&self.read)
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let _turn = self.fast.as_ref().map(Fast::pool_turn);
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE outbox SET lease_owner = $1, lease_until = $2 + $3, attempts = attempts + 1 \
             WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $2 \
             AND (lease_until IS NULL OR lease_until <= $2) ORDER BY next_attempt_at LIMIT $4{SKIP_LOCKED}) \
             RETURNING tenant_id, {OUTBOX_COLS}"
        )))
        .bind(owner)
        .bind(now.millis())
        .bind(lease_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.write)
        .await?;
        // A poll that found nothing due changed nothing: most polls, and no reader need hear of them.
        if !rows.is_empty() {
            written_outbox();
        }
        rows.iter()
            .map(|r| {
                Ok(ClaimedMail {
                    tenant: TenantId::from_trusted(r.try_get::<String, _>("tenant_id")?),
                    message: outbox_message(r)?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    async fn finish_outbox(&self, t: &TenantId, id: &str, owner: &str, outcome: &Delivery, now: Timestamp) -> Result<bool> {
        const WHERE: &str = "WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3 AND status = 'pending'";
        // A delivered row keeps who, what and when, not the variables (links, names) it was rendered with.
        let (sql, text, at) = match outcome {
            Delivery::Delivered => (
                format!(
                    "UPDATE outbox SET status = 'delivered', delivered_at = $5, last_error = $4, payload = '{{}}', \
                     lease_owner = NULL, lease_until = NULL {WHERE}"
                ),
                None,
                now,
            ),
            Delivery::Retry { error, at } => (
                format!(
                    "UPDATE outbox SET next_attempt_at = $5, last_error = $4, lease_owner = NULL, lease_until = NULL {WHERE}"
                ),
                Some(error.as_str()),
                *at,
            ),
            Delivery::Dead { error } => (
                format!(
                    "UPDATE outbox SET status = 'dead', next_attempt_at = $5, last_error = $4, lease_owner = NULL, \
                     lease_until = NULL {WHERE}"
                ),
                Some(error.as_str()),
                now,
            ),
            Delivery::Suppressed { reason } => (
                format!(
                    "UPDATE outbox SET status = 'suppressed', next_attempt_at = $5, last_error = $4, lease_owner = NULL, \
                     lease_until = NULL {WHERE}"
                ),
                Some(reason.as_str()),
                now,
            ),
        };
        let _turn = self.fast.as_ref().map(Fast::pool_turn);
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(t.as_str())
            .bind(id)
            .bind(owner)
            .bind(text)
            .bind(at.millis())
            .execute(&self.write)
            .await?;
        written_outbox();
        Ok(done.rows_affected() == 1)
    }

    async fn release_outbox(&self, owner: &str, ids: &[(TenantId, String)]) -> Result<u64> {
        let owner = owner.to_owned();
        let ids = ids.to_vec();
        self.in_tx(move |c| {
            Box::pin(async move {
                let mut n = 0;
                for (t, id) in &ids {
                    // Not attempted: the claim's attempt is given back with the lease.
                    n += sqlx::query(
                        "UPDATE outbox SET lease_owner = NULL, lease_until = NULL, attempts = attempts - 1 \
                         WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3 AND status = 'pending'",
                    )
                    .bind(t.as_str())
                    .bind(id.as_str())
                    .bind(owner.as_str())
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                }
                Ok(n)
            })
        })
        .await
    }

    async fn list_outbox(&self, t: &TenantId, filter: &OutboxFilter, limit: u32) -> Result<Vec<OutboxRecord>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE tenant_id = $1 AND ($2 IS NULL OR user_id = $2) \
             AND ($3 IS NULL OR status = $3) ORDER BY created_at, id LIMIT $4"
        )))
        .bind(t.as_str())
        .bind(filter.user.as_ref().map(UserId::as_str))
        .bind(filter.status.as_deref())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(outbox_record).collect()
    }

    async fn outbox_row(&self, t: &TenantId, id: &str) -> Result<Option<OutboxRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {OUTBOX_COLS} FROM outbox WHERE tenant_id = $1 AND id = $2")))
            .bind(t.as_str())
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(outbox_record).transpose()
    }

    async fn retry_outbox(&self, t: &TenantId, id: &str, now: Timestamp, effects: &Effects) -> Result<Option<OutboxRecord>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $3, lease_owner = NULL, lease_until = NULL \
             WHERE tenant_id = $1 AND id = $2 AND status IN ('dead', 'suppressed') RETURNING {OUTBOX_COLS}"
        )))
        .bind(t.as_str())
        .bind(id)
        .bind(now.millis())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let _ = tx.rollback().await;
            return Ok(None);
        };
        let record = outbox_record(&row)?;
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(Some(record))
    }

    async fn email_template(&self, t: &TenantId, name: &str) -> Result<Option<EmailTemplate>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TEMPLATE_COLS} FROM email_templates WHERE tenant_id = $1 AND name = $2"
        )))
        .bind(t.as_str())
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(email_template).transpose()
    }

    async fn put_email_template(&self, t: &TenantId, tpl: &EmailTemplate, create: bool, effects: &Effects) -> Result<()> {
        let upsert = if create {
            ""
        } else {
            " ON CONFLICT (tenant_id, name) DO UPDATE SET body = excluded.body, sender = excluded.sender, \
             subject = excluded.subject, syntax = excluded.syntax, result_url = excluded.result_url, \
             url_lifetime_secs = excluded.url_lifetime_secs, include_email_in_redirect = excluded.include_email_in_redirect, \
             enabled = excluded.enabled, updated_at = excluded.updated_at"
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO email_templates (tenant_id, {TEMPLATE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11){upsert}"
        )))
        .bind(t.as_str())
        .bind(&tpl.name)
        .bind(&tpl.body)
        .bind(&tpl.from)
        .bind(&tpl.subject)
        .bind(&tpl.syntax)
        .bind(&tpl.result_url)
        .bind(tpl.url_lifetime_secs)
        .bind(tpl.include_email_in_redirect)
        .bind(tpl.enabled)
        .bind(tpl.updated_at.millis())
        .execute(&mut *tx)
        .await?;
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(())
    }

    async fn email_provider(&self, t: &TenantId) -> Result<Option<EmailProvider>> {
        let row = sqlx::query(
            "SELECT name, enabled, default_from_address, credentials, settings, updated_at FROM email_providers \
             WHERE tenant_id = $1",
        )
        .bind(t.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(email_provider).transpose()
    }

    async fn put_email_provider(&self, t: &TenantId, p: &EmailProvider, create: bool, effects: &Effects) -> Result<()> {
        let upsert = if create {
            ""
        } else {
            " ON CONFLICT (tenant_id) DO UPDATE SET name = excluded.name, enabled = excluded.enabled, \
             default_from_address = excluded.default_from_address, credentials = excluded.credentials, \
             settings = excluded.settings, updated_at = excluded.updated_at"
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO email_providers (tenant_id, name, enabled, default_from_address, credentials, settings, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7){upsert}"
        )))
        .bind(t.as_str())
        .bind(&p.name)
        .bind(p.enabled)
        .bind(&p.default_from_address)
        .bind(&p.credentials)
        .bind(Json(&p.settings))
        .bind(p.updated_at.millis())
        .execute(&mut *tx)
        .await?;
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(())
    }

    async fn delete_email_provider(&self, t: &TenantId, effects: &Effects) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM email_providers WHERE tenant_id = $1").bind(t.as_str()).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(true)
    }
}

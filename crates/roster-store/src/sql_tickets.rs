// One-time tickets and jobs. Included after `sql_common.rs` by `sqlite.rs` and `postgres.rs`.
//
// Redemption is one conditional UPDATE (unused, unexpired, of the expected kind) in the same
// transaction as the user change it authorizes: of any number of concurrent redemptions exactly one
// commits, and a failed change leaves the ticket usable.

use crate::model::{Job as MgmtJob, Redeemed, Ticket};
use crate::repo::TicketRepo;

fn ticket_from_row(r: &DbRow) -> Result<Ticket> {
    Ok(Ticket {
        id_hash: r.try_get("id_hash")?,
        kind: r.try_get("kind")?,
        user_id: UserId::from_trusted(r.try_get::<String, _>("user_id")?),
        email: r.try_get("email")?,
        client_id: r.try_get("client_id")?,
        result_url: r.try_get("result_url")?,
        mark_email_verified: r.try_get("mark_email_verified")?,
        include_email_in_redirect: r.try_get("include_email_in_redirect")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        expires_at: Timestamp::from_millis(r.try_get("expires_at")?),
        used_at: r.try_get::<Option<i64>, _>("used_at")?.map(Timestamp::from_millis),
    })
}

fn job_from_row(r: &DbRow) -> Result<MgmtJob> {
    Ok(MgmtJob {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        status: r.try_get("status")?,
        user_id: r.try_get::<Option<String>, _>("user_id")?.map(UserId::from_trusted),
        outbox_id: r.try_get("outbox_id")?,
        details: r.try_get::<Json<Value>, _>("details")?.0,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
    })
}

#[async_trait]
impl TicketRepo for SqlBackend {
    async fn ticket(&self, t: &TenantId, id_hash: &str) -> Result<Option<Ticket>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM tickets WHERE tenant_id = $1 AND id_hash = $2",
            params::TICKET_COLS
        )))
        .bind(t.as_str())
        .bind(id_hash)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(ticket_from_row).transpose()
    }

    async fn redeem_ticket(
        &self,
        t: &TenantId,
        id_hash: &str,
        kind: &str,
        now: Timestamp,
        mutate: UserMutation,
        new_password_hash: Option<String>,
        effects: &Effects,
    ) -> Result<Redeemed> {
        let (t, id_hash, kind, effects) = (t.clone(), id_hash.to_owned(), kind.to_owned(), effects.clone());
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE tickets SET used_at = $4 WHERE tenant_id = $1 AND id_hash = $2 AND kind = $3 AND used_at IS NULL \
             AND expires_at > $4 RETURNING {}",
            params::TICKET_COLS
        )))
        .bind(t.as_str())
        .bind(&id_hash)
        .bind(&kind)
        .bind(now.millis())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let _ = tx.rollback().await;
            return Ok(Redeemed::Invalid);
        };
        let ticket = ticket_from_row(&row)?;
        match update_user_tx(&mut tx, &t, &ticket.user_id, mutate, new_password_hash, &effects).await {
            Ok(Some(user)) => {
                commit(tx).await?;
                Ok(Redeemed::Done { ticket, user: Box::new(user) })
            }
            Ok(None) => {
                let _ = tx.rollback().await;
                Ok(Redeemed::Invalid)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn create_job(&self, t: &TenantId, job: &MgmtJob, effects: &Effects) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO jobs (tenant_id, id, kind, status, user_id, outbox_id, details, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(t.as_str())
        .bind(&job.id)
        .bind(&job.kind)
        .bind(&job.status)
        .bind(job.user_id.as_ref().map(UserId::as_str))
        .bind(&job.outbox_id)
        .bind(Json(&job.details))
        .bind(job.created_at.millis())
        .execute(&mut *tx)
        .await?;
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(())
    }

    async fn job(&self, t: &TenantId, id: &str) -> Result<Option<MgmtJob>> {
        let row = sqlx::query(
            "SELECT id, kind, status, user_id, outbox_id, details, created_at FROM jobs WHERE tenant_id = $1 AND id = $2",
        )
        .bind(t.as_str())
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn password_history(&self, t: &TenantId, user: &UserId, limit: u32) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT hash FROM password_history WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at DESC LIMIT $3",
        )
        .bind(t.as_str())
        .bind(user.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("hash")?)).collect()
    }
}

// The self-service account: tenant settings, a user's sessions, re-authentication and pending
// tickets. Included after `sql_common.rs` by `sqlite.rs` and `postgres.rs`.

use crate::repo::AccountRepo;

#[async_trait]
impl AccountRepo for SqlBackend {
    async fn tenant_settings(&self, t: &TenantId) -> Result<Value> {
        let row = sqlx::query("SELECT settings FROM tenants WHERE id = $1").bind(t.as_str()).fetch_optional(&self.read).await?;
        match row {
            Some(r) => Ok(r.try_get::<Json<Value>, _>("settings")?.0),
            None => Ok(Value::Object(Default::default())),
        }
    }

    async fn put_tenant_settings(&self, t: &TenantId, settings: &Value, effects: &Effects) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE tenants SET settings = $2 WHERE id = $1")
            .bind(t.as_str())
            .bind(Json(settings))
            .execute(&mut *tx)
            .await?;
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(())
    }

    async fn user_sessions(&self, t: &TenantId, user: &UserId, now: Timestamp) -> Result<Vec<Session>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL \
             AND expires_at > $3 ORDER BY last_seen_at DESC, id"
        )))
        .bind(t.as_str())
        .bind(user.as_str())
        .bind(now.millis())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn reauthenticate_session(&self, t: &TenantId, id_hash: &str, now: Timestamp, effects: &Effects) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE sessions SET authenticated_at = $3, last_seen_at = $3 WHERE tenant_id = $1 AND id = $2 \
             AND revoked_at IS NULL AND expires_at > $3",
        )
        .bind(t.as_str())
        .bind(id_hash)
        .bind(now.millis())
        .execute(&mut *tx)
        .await?;
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn live_ticket(&self, t: &TenantId, user: &UserId, kind: &str, now: Timestamp) -> Result<Option<Ticket>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM tickets WHERE tenant_id = $1 AND user_id = $2 AND kind = $3 AND used_at IS NULL \
             AND expires_at > $4 ORDER BY created_at DESC LIMIT 1",
            params::TICKET_COLS
        )))
        .bind(t.as_str())
        .bind(user.as_str())
        .bind(kind)
        .bind(now.millis())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(ticket_from_row).transpose()
    }
}

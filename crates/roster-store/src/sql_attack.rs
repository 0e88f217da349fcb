// Attack-protection counters and settings. Included after `sql_common.rs` by `sqlite.rs` and
// `postgres.rs`.
//
// A charge is one upsert that increments (or restarts, when its window is over) and returns the count,
// so concurrent attempts on any number of nodes each see a distinct count: of N parallel attempts at
// most `limit` see a count within the limit.

use crate::model::{AttackCounter, Charge, CounterScope};
use crate::repo::AttackRepo;

use crate::params::COUNTER_COLS;

fn counter_from_row(r: &DbRow) -> Result<AttackCounter> {
    decode::counter(r)
}

#[async_trait]
impl AttackRepo for SqlBackend {
    async fn counter(&self, t: &TenantId, kind: &str, key: &str) -> Result<Option<AttackCounter>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COUNTER_COLS} FROM attack_counters WHERE tenant_id = $1 AND kind = $2 AND key = $3"
        )))
        .bind(t.as_str())
        .bind(kind)
        .bind(key)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(counter_from_row).transpose()
    }

    async fn charge(&self, t: &TenantId, c: &Charge) -> Result<AttackCounter> {
        // SQLite: through the group-commit writer (a login's charge shares a commit with others).
        if let Some(f) = &self.fast {
            return f.charge(t.clone(), c.clone()).await;
        }
        let row = bind_params(sqlx::query(params::CHARGE), params::charge(t, c)).fetch_one(&self.write).await?;
        written();
        decode::counter(&row)
    }

    async fn blocked_counters(&self, t: &TenantId, scope: &CounterScope, since: Timestamp) -> Result<Vec<AttackCounter>> {
        let (clause, value) = scope_clause(scope);
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COUNTER_COLS} FROM attack_counters WHERE tenant_id = $1 AND {clause} \
             AND blocked_at IS NOT NULL AND window_start > $3 ORDER BY blocked_at, key"
        )))
        .bind(t.as_str())
        .bind(value.0)
        .bind(since.millis())
        .bind(value.1)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(counter_from_row).collect()
    }

    async fn clear_counters(&self, t: &TenantId, scope: &CounterScope, effects: &Effects) -> Result<u64> {
        let (clause, value) = scope_clause(scope);
        let mut tx = self.begin_write().await?;
        // `$3 = 0`: every scoped statement binds $2–$4 in the same order (both engines want each bound
        // parameter used).
        let done = sqlx::query(AssertSqlSafe(format!("DELETE FROM attack_counters WHERE tenant_id = $1 AND {clause} AND $3 = 0")))
            .bind(t.as_str())
            .bind(value.0)
            .bind(0_i64)
            .bind(value.1)
            .execute(&mut *tx)
            .await?;
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(done.rows_affected())
    }

    async fn attack_settings(&self, t: &TenantId, kind: &str) -> Result<Option<Value>> {
        let row = sqlx::query("SELECT settings FROM attack_protection WHERE tenant_id = $1 AND kind = $2")
            .bind(t.as_str())
            .bind(kind)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| Ok(r.try_get::<Json<Value>, _>("settings")?.0)).transpose()
    }

    async fn put_attack_settings(&self, t: &TenantId, kind: &str, settings: &Value, effects: &Effects) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO attack_protection (tenant_id, kind, settings, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, kind) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
        )
        .bind(t.as_str())
        .bind(kind)
        .bind(Json(settings))
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?;
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(())
    }
}

/// The condition of a scope over `$2` and `$4` (`$3` is the statement's own), and their values.
fn scope_clause(scope: &CounterScope) -> (&'static str, (String, String)) {
    match scope {
        CounterScope::Key { kind, key } => ("kind = $2 AND key = $4", (kind.clone(), key.clone())),
        CounterScope::Identifier(i) => ("kind = $2 AND identifier = $4", ("login".into(), i.to_lowercase())),
        CounterScope::User(u) => ("kind = $2 AND user_id = $4", ("login".into(), u.as_str().to_owned())),
        // Throttling counters only: the brute-force blocks of every account from that address stay.
        CounterScope::Ip(ip) => ("kind IN ('ip_login', 'ip_signup') AND ip = $4 AND $2 = $2", (String::new(), ip.clone())),
    }
}

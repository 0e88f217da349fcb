// The SQL of every repository, written once and compiled for each backend by `include!` from
// `sqlite.rs` and `postgres.rs`, which define `Db`, `DbRow`, `BEGIN_WRITE`, `FOR_UPDATE`, `TEXT_ORDER` and
// `migrator()`. Placeholders are `$n` (both engines accept them); JSON goes through `sqlx::types::Json`
// (TEXT on SQLite, JSONB on PostgreSQL); times are BIGINT milliseconds.

use async_trait::async_trait;
use roster_domain::log::LogEvent;
use roster_domain::query::{FilterField, FilterValue, Page, Sort, SortField, UserQuery};
use roster_domain::user::{NewUser, User};
use roster_domain::{ClientId, ConnectionId, TenantId, TenantName, Timestamp, UserId};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row};

use crate::model::{
    AuthCode, Client, ClientGrant, Connection, Effects, LogRecord, NewTenant, OutboxMessage, OutboxRecord, RefreshToken, Revocation,
    Rotation, Session, SigningKey, Tenant, UserList,
};
use crate::decode::{self, Cols, string_list};
use crate::params;
use crate::repo::{ClientRepo, Lifecycle, LogRepo, SessionRepo, TenantRepo, UserMutation, UserRepo};

type Conn = <Db as sqlx::Database>::Connection;

/// A transaction body: runs on the write connection inside a transaction the backend owns.
pub(crate) type TxFuture<'c, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'c>>;

pub(crate) struct SqlBackend {
    read: sqlx::Pool<Db>,
    write: sqlx::Pool<Db>,
    /// A backend's own path for the hottest point reads, when it has one (see `Fast`).
    fast: Option<Fast>,
}

const USER_COLS: &str = "user_id, connection_id, email, email_verified, username, phone_number, phone_verified, \
     name, given_name, family_name, nickname, picture, user_metadata, app_metadata, blocked, identities, \
     created_at, updated_at, last_login, last_ip, logins_count, last_password_reset";

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored value is invalid: {what}").into())
}

impl Cols for DbRow {
    fn text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.try_get(col)?)
    }
    fn json(&self, col: &str) -> Result<Value> {
        Ok(self.try_get::<Json<Value>, _>(col)?.0)
    }
}

fn user_by_id_sql() -> String {
    format!("SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND user_id = $2")
}

fn user_by_login_sql() -> String {
    format!(
        "SELECT {USER_COLS}, (SELECT c.password_hash FROM credentials c WHERE c.tenant_id = users.tenant_id \
         AND c.user_id = users.user_id) AS password_hash FROM users \
         WHERE tenant_id = $1 AND connection_id = $2 AND (email_lower = $3 OR username = $3) \
         ORDER BY (email_lower = $3) DESC LIMIT 1"
    )
}

fn client_by_id_sql() -> String {
    format!("SELECT {CLIENT_COLS} FROM clients WHERE tenant_id = $1 AND client_id = $2")
}

/// Erasure strips an identifier (an address or a username) from the log events that name it. The
/// `user_name IS NOT NULL` term lets the planner use the partial index `logs_user_name`.
const ERASE_NAMED_LOGS: &str = "UPDATE logs SET user_name = NULL, ip = NULL, user_agent = NULL, details = $3 \
     WHERE tenant_id = $1 AND lower(user_name) = $2 AND user_name IS NOT NULL";

const CLIENT_GRANT_SQL: &str = "SELECT id, client_id, audience, scope FROM client_grants WHERE tenant_id = $1 AND client_id = $2 AND audience = $3";

/// Commit a transaction of the write pool, then tell this process's readers a commit was made
/// ([`written`]). Every write through `self.write` ends with this or with `written()`.
async fn commit(tx: sqlx::Transaction<'_, Db>) -> Result<()> {
    tx.commit().await?;
    written();
    Ok(())
}

fn user_from_row(row: &DbRow) -> Result<User> {
    decode::user(row)
}

const CLIENT_COLS: &str = "client_id, name, secret_hash, app_type, is_management, grant_types, callbacks, allowed_logout_urls, \
     token_endpoint_auth_method, is_first_party, description, created_at, token_endpoint_ip_header_trusted";

fn client_from_row(row: &DbRow) -> Result<Client> {
    decode::client(row)
}

async fn insert_client(conn: &mut Conn, t: &TenantId, c: &Client) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO clients (tenant_id, {CLIENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    )))
    .bind(t.as_str())
    .bind(c.client_id.as_str())
    .bind(&c.name)
    .bind(&c.secret_hash)
    .bind(&c.app_type)
    .bind(c.is_management)
    .bind(Json(&c.grant_types))
    .bind(Json(&c.callbacks))
    .bind(Json(&c.allowed_logout_urls))
    .bind(&c.token_endpoint_auth_method)
    .bind(c.is_first_party)
    .bind(&c.description)
    .bind(c.created_at.millis())
    .bind(c.token_endpoint_ip_header_trusted)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_connection(conn: &mut Conn, t: &TenantId, c: &Connection) -> Result<()> {
    sqlx::query("INSERT INTO connections (tenant_id, id, name, strategy, options, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(t.as_str())
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(&c.strategy)
        .bind(Json(&c.options))
        .bind(c.created_at.millis())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert_effects(conn: &mut Conn, t: &TenantId, e: &Effects) -> Result<()> {
    for ev in &e.logs {
        insert_log(conn, t, ev).await?;
    }
    for m in &e.outbox {
        insert_outbox(conn, t, m).await?;
    }
    // Revocations first: a change may end the old tickets of a kind and issue a new one.
    for r in &e.revocations {
        for (sql, ps) in params::revocation(t, r) {
            bind_params(sqlx::query(sql), ps).execute(&mut *conn).await?;
        }
    }
    for k in &e.tickets {
        bind_params(sqlx::query(params::INSERT_TICKET), params::ticket(t, k)).execute(&mut *conn).await?;
    }
    for (user, hash, at) in &e.password_history {
        for (sql, ps) in params::remember_password(t, user, hash, *at) {
            bind_params(sqlx::query(sql), ps).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

async fn insert_outbox(conn: &mut Conn, t: &TenantId, m: &OutboxMessage) -> Result<()> {
    bind_params(sqlx::query(params::INSERT_OUTBOX), params::outbox(t, m)).execute(&mut *conn).await?;
    Ok(())
}

const SESSION_COLS: &str = "id, user_id, created_at, authenticated_at, last_seen_at, expires_at, ip, user_agent";

fn session_from_row(r: &DbRow) -> Result<Session> {
    Ok(Session {
        id_hash: r.try_get("id")?,
        user_id: UserId::from_trusted(r.try_get::<String, _>("user_id")?),
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        authenticated_at: Timestamp::from_millis(r.try_get("authenticated_at")?),
        last_seen_at: Timestamp::from_millis(r.try_get("last_seen_at")?),
        expires_at: Timestamp::from_millis(r.try_get("expires_at")?),
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
    })
}

const CODE_COLS: &str =
    "id, client_id, user_id, redirect_uri, scope, audience, nonce, code_challenge, session_id, auth_time, expires_at";

fn code_from_row(r: &DbRow) -> Result<AuthCode> {
    Ok(AuthCode {
        id_hash: r.try_get("id")?,
        client_id: ClientId::from_trusted(r.try_get::<String, _>("client_id")?),
        user_id: UserId::from_trusted(r.try_get::<String, _>("user_id")?),
        redirect_uri: r.try_get("redirect_uri")?,
        scope: r.try_get("scope")?,
        audience: r.try_get("audience")?,
        nonce: r.try_get("nonce")?,
        code_challenge: r.try_get("code_challenge")?,
        session_id: r.try_get("session_id")?,
        auth_time: Timestamp::from_millis(r.try_get("auth_time")?),
        expires_at: Timestamp::from_millis(r.try_get("expires_at")?),
    })
}

const REFRESH_COLS: &str = "id, family_id, user_id, client_id, scope, audience, session_id, auth_time, created_at, expires_at, \
     rotated_at, revoked_at";

fn refresh_from_row(r: &DbRow) -> Result<RefreshToken> {
    Ok(RefreshToken {
        id_hash: r.try_get("id")?,
        family_id: r.try_get("family_id")?,
        user_id: UserId::from_trusted(r.try_get::<String, _>("user_id")?),
        client_id: ClientId::from_trusted(r.try_get::<String, _>("client_id")?),
        scope: r.try_get("scope")?,
        audience: r.try_get("audience")?,
        session_id: r.try_get("session_id")?,
        auth_time: Timestamp::from_millis(r.try_get("auth_time")?),
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        expires_at: Timestamp::from_millis(r.try_get("expires_at")?),
        rotated: r.try_get::<Option<i64>, _>("rotated_at")?.is_some(),
        revoked: r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
    })
}

async fn insert_refresh(conn: &mut Conn, t: &TenantId, r: &RefreshToken) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO refresh_tokens (tenant_id, {REFRESH_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL)"
    )))
    .bind(t.as_str())
    .bind(&r.id_hash)
    .bind(&r.family_id)
    .bind(r.user_id.as_str())
    .bind(r.client_id.as_str())
    .bind(&r.scope)
    .bind(r.audience.as_deref())
    .bind(r.session_id.as_deref())
    .bind(r.auth_time.millis())
    .bind(r.created_at.millis())
    .bind(r.expires_at.millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn connection_from_row(row: &DbRow) -> Result<Connection> {
    Ok(Connection {
        id: ConnectionId::from_trusted(row.try_get::<String, _>("id")?),
        name: row.try_get("name")?,
        strategy: row.try_get("strategy")?,
        options: row.try_get::<Json<Value>, _>("options")?.0,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

fn tenant_from_row(row: &DbRow) -> Result<Tenant> {
    let name: String = row.try_get("name")?;
    Ok(Tenant {
        id: TenantId::from_trusted(row.try_get::<String, _>("id")?),
        name: TenantName::parse(&name).map_err(|_| corrupt("tenant name"))?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

async fn insert_log(conn: &mut Conn, t: &TenantId, ev: &LogEvent) -> Result<()> {
    bind_params(sqlx::query(params::INSERT_LOG), params::log(t, ev)).execute(&mut *conn).await?;
    Ok(())
}

impl SqlBackend {
    /// Begin a transaction of the sqlx write pool, holding this writer's turn at SQLite's write lock
    /// until it has it (`PoolTurn` in `sqlite.rs`; nothing on PostgreSQL).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>> {
        let _turn = self.fast.as_ref().map(Fast::pool_turn);
        Ok(self.write.begin_with(BEGIN_WRITE).await?)
    }

    /// A transaction on the sqlx write pool: committed when `op` succeeds, rolled back otherwise.
    async fn in_tx<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> TxFuture<'c, T> + Send + 'static,
    {
        let mut tx = self.begin_write().await?;
        match op(&mut tx).await {
            Ok(v) => {
                commit(tx).await?;
                Ok(v)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

/// Bind the values `params.rs` computed for a statement.
fn bind_params<'q>(
    mut q: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>,
    ps: Vec<params::Param>,
) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments> {
    for p in ps {
        q = match p {
            params::Param::Text(v) => q.bind(v),
            params::Param::Int(v) => q.bind(v),
            params::Param::Bool(v) => q.bind(v),
            params::Param::Json(v) => q.bind(Json(v)),
        };
    }
    q
}

/// `update_user`'s transaction body (run by `in_tx`, possibly batched with others).
async fn update_user_tx(
    c: &mut Conn,
    t: &TenantId,
    id: &UserId,
    mutate: UserMutation,
    new_password_hash: Option<String>,
    effects: &Effects,
) -> Result<Option<User>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND user_id = $2{FOR_UPDATE}"
    )))
    .bind(t.as_str())
    .bind(id.as_str())
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut u = user_from_row(&row)?;
    let before = params::user_fields(&u);
    mutate(&mut u).map_err(StoreError::Rejected)?;
    if let Some((sql, ps)) = params::update_user(t, &before, &u) {
        bind_params(sqlx::query(AssertSqlSafe(sql)), ps).execute(&mut *c).await?;
    }
    if let Some(hash) = new_password_hash {
        bind_params(sqlx::query(params::UPSERT_CREDENTIAL), params::credential(t, id, &hash, u.updated_at.millis()))
            .execute(&mut *c)
            .await?;
    }
    insert_effects(c, t, effects).await?;
    Ok(Some(u))
}


/// `create_user`'s transaction body.
async fn create_user_tx(c: &mut Conn, t: &TenantId, new: &NewUser, effects: &Effects) -> Result<()> {
    let u = &new.user;
    bind_params(sqlx::query(params::INSERT_USER), params::insert_user(t, u)).execute(&mut *c).await?;
    if let Some(hash) = &new.password_hash {
        bind_params(sqlx::query(params::UPSERT_CREDENTIAL), params::credential(t, &u.user_id, hash, u.created_at.millis()))
            .execute(&mut *c)
            .await?;
    }
    insert_effects(c, t, effects).await
}

#[async_trait]
impl Lifecycle for SqlBackend {
    async fn migrate(&self) -> Result<()> {
        migrator().run(&self.write).await?;
        written();
        Ok(())
    }
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
    async fn close(&self) {
        if let Some(f) = &self.fast {
            f.close();
        }
        self.write.close().await;
        self.read.close().await;
    }
}

#[async_trait]
impl TenantRepo for SqlBackend {
    async fn create_tenant(&self, nt: &NewTenant) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let t = &nt.tenant.id;
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(t.as_str())
            .bind(nt.tenant.name.as_str())
            .bind(nt.tenant.created_at.millis())
            .execute(&mut *tx)
            .await?;
        for k in &nt.keys {
            sqlx::query(
                "INSERT INTO signing_keys (tenant_id, kid, alg, private_key, public_jwk, status, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(t.as_str())
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(&k.private_key)
            .bind(Json(&k.public_jwk))
            .bind(&k.status)
            .bind(k.created_at.millis())
            .execute(&mut *tx)
            .await?;
        }
        for c in &nt.connections {
            insert_connection(&mut tx, t, c).await?;
        }
        for c in &nt.clients {
            insert_client(&mut tx, t, c).await?;
        }
        for g in &nt.grants {
            sqlx::query("INSERT INTO client_grants (tenant_id, id, client_id, audience, scope) VALUES ($1, $2, $3, $4, $5)")
                .bind(t.as_str())
                .bind(&g.id)
                .bind(g.client_id.as_str())
                .bind(&g.audience)
                .bind(Json(&g.scope))
                .execute(&mut *tx)
                .await?;
        }
        commit(tx).await?;
        Ok(())
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY name").fetch_all(&self.read).await?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn tenant_by_name(&self, name: &TenantName) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn delete_tenant(&self, name: &TenantName) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM tenants WHERE name = $1").bind(name.as_str()).execute(&mut *tx).await?;
        if let Some(sql) = AFTER_TENANT_DELETE {
            sqlx::query(sql).execute(&mut *tx).await?;
        }
        commit(tx).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn signing_keys(&self, t: &TenantId) -> Result<Vec<SigningKey>> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_key, public_jwk, status, created_at FROM signing_keys \
             WHERE tenant_id = $1 ORDER BY created_at, kid",
        )
        .bind(t.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SigningKey {
                    kid: r.try_get("kid")?,
                    alg: r.try_get("alg")?,
                    private_key: r.try_get("private_key")?,
                    public_jwk: r.try_get::<Json<Value>, _>("public_jwk")?.0,
                    status: r.try_get("status")?,
                    created_at: Timestamp::from_millis(r.try_get("created_at")?),
                })
            })
            .collect()
    }
}

#[async_trait]
impl ClientRepo for SqlBackend {
    async fn client(&self, t: &TenantId, id: &ClientId) -> Result<Option<Client>> {
        if let Some(f) = &self.fast {
            return f.client(t, id);
        }
        let row = sqlx::query(AssertSqlSafe(client_by_id_sql()))
        .bind(t.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn client_grant(&self, t: &TenantId, client: &ClientId, audience: &str) -> Result<Option<ClientGrant>> {
        if let Some(f) = &self.fast {
            return f.client_grant(t, client, audience);
        }
        let row = sqlx::query(CLIENT_GRANT_SQL)
        .bind(t.as_str())
        .bind(client.as_str())
        .bind(audience)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(ClientGrant {
                id: r.try_get("id")?,
                client_id: ClientId::from_trusted(r.try_get::<String, _>("client_id")?),
                audience: r.try_get("audience")?,
                scope: string_list(r.try_get::<Json<Value>, _>("scope")?.0),
            })
        })
        .transpose()
    }

    async fn connection_by_name(&self, t: &TenantId, name: &str) -> Result<Option<Connection>> {
        let row = sqlx::query("SELECT id, name, strategy, options, created_at FROM connections WHERE tenant_id = $1 AND name = $2")
            .bind(t.as_str())
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(connection_from_row).transpose()
    }

    async fn connection(&self, t: &TenantId, id: &ConnectionId) -> Result<Option<Connection>> {
        let row = sqlx::query("SELECT id, name, strategy, options, created_at FROM connections WHERE tenant_id = $1 AND id = $2")
            .bind(t.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(connection_from_row).transpose()
    }

    async fn list_clients(&self, t: &TenantId) -> Result<Vec<Client>> {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {CLIENT_COLS} FROM clients WHERE tenant_id = $1 ORDER BY created_at, client_id")))
            .bind(t.as_str())
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn create_client(&self, t: &TenantId, c: &Client, effects: &Effects) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_client(&mut tx, t, c).await?;
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(())
    }

    async fn update_client(&self, t: &TenantId, c: &Client, effects: &Effects) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE clients SET name = $3, secret_hash = $4, app_type = $5, grant_types = $6, callbacks = $7, \
             allowed_logout_urls = $8, token_endpoint_auth_method = $9, is_first_party = $10, description = $11, \
             token_endpoint_ip_header_trusted = $12 WHERE tenant_id = $1 AND client_id = $2",
        )
        .bind(t.as_str())
        .bind(c.client_id.as_str())
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(&c.app_type)
        .bind(Json(&c.grant_types))
        .bind(Json(&c.callbacks))
        .bind(Json(&c.allowed_logout_urls))
        .bind(&c.token_endpoint_auth_method)
        .bind(c.is_first_party)
        .bind(&c.description)
        .bind(c.token_endpoint_ip_header_trusted)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn delete_client(&self, t: &TenantId, id: &ClientId, effects: &Effects) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM clients WHERE tenant_id = $1 AND client_id = $2")
            .bind(t.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        // Tokens issued to the client stop refreshing.
        sqlx::query("UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND client_id = $2 AND revoked_at IS NULL")
            .bind(t.as_str())
            .bind(id.as_str())
            .bind(Timestamp::now().millis())
            .execute(&mut *tx)
            .await?;
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn list_connections(&self, t: &TenantId) -> Result<Vec<Connection>> {
        let rows = sqlx::query("SELECT id, name, strategy, options, created_at FROM connections WHERE tenant_id = $1 ORDER BY created_at, id")
            .bind(t.as_str())
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(connection_from_row).collect()
    }

    async fn create_connection(&self, t: &TenantId, c: &Connection, effects: &Effects) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_connection(&mut tx, t, c).await?;
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(())
    }

    async fn update_connection(&self, t: &TenantId, c: &Connection, effects: &Effects) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE connections SET name = $3, options = $4 WHERE tenant_id = $1 AND id = $2")
            .bind(t.as_str())
            .bind(c.id.as_str())
            .bind(&c.name)
            .bind(Json(&c.options))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn delete_connection(&self, t: &TenantId, id: &ConnectionId, effects: &Effects) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        // A connection's users go with it (as in Auth0).
        sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND connection_id = $2").bind(t.as_str()).bind(id.as_str()).execute(&mut *tx).await?;
        let done =
            sqlx::query("DELETE FROM connections WHERE tenant_id = $1 AND id = $2").bind(t.as_str()).bind(id.as_str()).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(true)
    }
}

#[async_trait]
impl SessionRepo for SqlBackend {
    async fn create_session(&self, t: &TenantId, s: &Session) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO sessions (tenant_id, {SESSION_COLS}, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)"
        )))
        .bind(t.as_str())
        .bind(&s.id_hash)
        .bind(s.user_id.as_str())
        .bind(s.created_at.millis())
        .bind(s.authenticated_at.millis())
        .bind(s.last_seen_at.millis())
        .bind(s.expires_at.millis())
        .bind(s.ip.as_deref())
        .bind(s.user_agent.as_deref())
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok(())
    }

    async fn session(&self, t: &TenantId, id_hash: &str, now: Timestamp) -> Result<Option<Session>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL AND expires_at > $3"
        )))
        .bind(t.as_str())
        .bind(id_hash)
        .bind(now.millis())
        .fetch_optional(&self.read)
        .await?;
        let Some(s) = row.as_ref().map(session_from_row).transpose()? else { return Ok(None) };
        // "Last seen" is kept to the minute: no write on every request.
        if now.millis() - s.last_seen_at.millis() > 60_000 {
            let mut tx = self.begin_write().await?;
            sqlx::query("UPDATE sessions SET last_seen_at = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(t.as_str())
                .bind(id_hash)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
            commit(tx).await?;
        }
        Ok(Some(s))
    }

    async fn revoke_session(&self, t: &TenantId, id_hash: &str, effects: &Effects) -> Result<bool> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL")
            .bind(t.as_str())
            .bind(id_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // Refresh tokens bound to the session end with it.
        sqlx::query("UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND session_id = $2 AND revoked_at IS NULL")
            .bind(t.as_str())
            .bind(id_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_effects(&mut tx, t, effects).await?;
        commit(tx).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_code(&self, t: &TenantId, c: &AuthCode) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO auth_codes (tenant_id, {CODE_COLS}, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)"
        )))
        .bind(t.as_str())
        .bind(&c.id_hash)
        .bind(c.client_id.as_str())
        .bind(c.user_id.as_str())
        .bind(&c.redirect_uri)
        .bind(&c.scope)
        .bind(c.audience.as_deref())
        .bind(c.nonce.as_deref())
        .bind(c.code_challenge.as_deref())
        .bind(c.session_id.as_deref())
        .bind(c.auth_time.millis())
        .bind(c.expires_at.millis())
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok(())
    }

    async fn consume_code(&self, t: &TenantId, id_hash: &str, now: Timestamp) -> Result<Option<AuthCode>> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE auth_codes SET used_at = $3 WHERE tenant_id = $1 AND id = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(t.as_str())
        .bind(id_hash)
        .bind(now.millis())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            commit(tx).await?;
            return Ok(None);
        }
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {CODE_COLS} FROM auth_codes WHERE tenant_id = $1 AND id = $2")))
            .bind(t.as_str())
            .bind(id_hash)
            .fetch_one(&mut *tx)
            .await?;
        let code = code_from_row(&row)?;
        commit(tx).await?;
        Ok(Some(code))
    }

    async fn create_refresh(&self, t: &TenantId, r: &RefreshToken) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_refresh(&mut tx, t, r).await?;
        commit(tx).await?;
        Ok(())
    }

    async fn refresh_token(&self, t: &TenantId, id_hash: &str) -> Result<Option<RefreshToken>> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {REFRESH_COLS} FROM refresh_tokens WHERE tenant_id = $1 AND id = $2")))
            .bind(t.as_str())
            .bind(id_hash)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(refresh_from_row).transpose()
    }

    async fn rotate_refresh(&self, t: &TenantId, old_hash: &str, new: &RefreshToken, now: Timestamp) -> Result<Rotation> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $3 WHERE tenant_id = $1 AND id = $2 \
             AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
        )
        .bind(t.as_str())
        .bind(old_hash)
        .bind(now.millis())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {REFRESH_COLS} FROM refresh_tokens WHERE tenant_id = $1 AND id = $2")))
            .bind(t.as_str())
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(old) = row.as_ref().map(refresh_from_row).transpose()? else {
            commit(tx).await?;
            return Ok(Rotation::Invalid);
        };
        if done.rows_affected() == 1 {
            insert_refresh(&mut tx, t, new).await?;
            commit(tx).await?;
            return Ok(Rotation::Rotated(old));
        }
        if old.rotated || old.revoked {
            // Re-use of a rotated token: someone holds a copy. End the whole family.
            sqlx::query("UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND family_id = $2 AND revoked_at IS NULL")
                .bind(t.as_str())
                .bind(&old.family_id)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
            commit(tx).await?;
            return Ok(Rotation::Reused);
        }
        commit(tx).await?;
        Ok(Rotation::Invalid)
    }

    async fn revoke_user_grants(&self, t: &TenantId, id: &UserId, keep: Option<&str>, now: Timestamp) -> Result<()> {
        let revoke = Revocation::Grants { user: id.clone(), keep_session: keep.map(str::to_owned), at: now };
        let mut tx = self.begin_write().await?;
        for (sql, ps) in params::revocation(t, &revoke) {
            bind_params(sqlx::query(sql), ps).execute(&mut *tx).await?;
        }
        commit(tx).await?;
        Ok(())
    }
}

#[async_trait]
impl UserRepo for SqlBackend {
    async fn create_user(&self, t: &TenantId, new: &NewUser, effects: &Effects) -> Result<()> {
        if let Some(f) = &self.fast {
            return f.create_user(t.clone(), new.clone(), effects.clone()).await;
        }
        let (t, new, effects) = (t.clone(), new.clone(), effects.clone());
        self.in_tx(move |c| Box::pin(async move { create_user_tx(c, &t, &new, &effects).await })).await
    }

    async fn user(&self, t: &TenantId, id: &UserId) -> Result<Option<Arc<User>>> {
        if let Some(f) = &self.fast {
            return f.user(t, id);
        }
        let row = sqlx::query(AssertSqlSafe(user_by_id_sql()))
            .bind(t.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(|r| user_from_row(r).map(Arc::new)).transpose()
    }

    async fn update_user(
        &self,
        t: &TenantId,
        id: &UserId,
        mutate: UserMutation,
        new_password_hash: Option<String>,
        effects: &Effects,
    ) -> Result<Option<User>> {
        if let Some(f) = &self.fast {
            return f.update_user(t.clone(), id.clone(), mutate, new_password_hash, effects.clone()).await;
        }
        let (t, id, effects) = (t.clone(), id.clone(), effects.clone());
        self.in_tx(move |c| Box::pin(async move { update_user_tx(c, &t, &id, mutate, new_password_hash, &effects).await })).await
    }

    async fn delete_user(&self, t: &TenantId, id: &UserId, effects: &Effects) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        // Erasure (GDPR Art. 17): sessions, codes, refresh tokens, credentials, password history and
        // tickets go by cascade; the rest explicitly, in this one transaction.
        let row = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND user_id = $2 RETURNING email_lower, username")
            .bind(t.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            let _ = tx.rollback().await;
            return Ok(false);
        };
        let identifiers: Vec<String> = [row.try_get::<Option<String>, _>("email_lower")?, row.try_get::<Option<String>, _>("username")?]
            .into_iter()
            .flatten()
            .map(|s| s.to_lowercase())
            .collect();
        for sql in [
            "DELETE FROM outbox WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM jobs WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM attack_counters WHERE tenant_id = $1 AND user_id = $2",
        ] {
            sqlx::query(sql).bind(t.as_str()).bind(id.as_str()).execute(&mut *tx).await?;
        }
        for i in &identifiers {
            sqlx::query("DELETE FROM attack_counters WHERE tenant_id = $1 AND identifier = $2")
                .bind(t.as_str())
                .bind(i)
                .execute(&mut *tx)
                .await?;
        }
        insert_effects(&mut tx, t, effects).await?;
        // The log keeps what happened, not who: the user's events (this deletion's included) carry a
        // random pseudonym instead of the id, and no name, address or user agent.
        let pseudonym = format!("deleted|{}", roster_domain::secret::random_alphanumeric(24));
        // `details` may name addresses too (an email change's new address): emptied.
        let no_details = Json(Value::Object(Default::default()));
        for &sql in PSEUDONYMIZE_LOGS {
            sqlx::query(sql).bind(t.as_str()).bind(id.as_str()).bind(&pseudonym).bind(&no_details).execute(&mut *tx).await?;
        }
        if let Some(sql) = FORGET_LOG_USER {
            sqlx::query(sql).bind(t.as_str()).bind(id.as_str()).execute(&mut *tx).await?;
        }
        for i in &identifiers {
            sqlx::query(ERASE_NAMED_LOGS)
            .bind(t.as_str())
            .bind(i)
            .bind(&no_details)
            .execute(&mut *tx)
            .await?;
        }
        commit(tx).await?;
        Ok(true)
    }

    async fn user_by_login(&self, t: &TenantId, connection: &ConnectionId, identifier: &str) -> Result<Option<(User, Option<String>)>> {
        if let Some(f) = &self.fast {
            return f.user_by_login(t, connection, identifier);
        }
        let row = sqlx::query(AssertSqlSafe(user_by_login_sql()))
        .bind(t.as_str())
        .bind(connection.as_str())
        .bind(identifier.to_lowercase())
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get::<Option<String>, _>("password_hash")?))).transpose()
    }

    async fn list_users(&self, t: &TenantId, q: &UserQuery, sort: Sort, page: Page, with_total: bool) -> Result<UserList> {
        enum Bind {
            Text(String),
            Bool(bool),
        }
        let mut filter_sql = String::from(" WHERE tenant_id = $1");
        let mut binds = Vec::new();
        for f in &q.filters {
            let n = binds.len() + 2;
            let cond = match f.field {
                FilterField::Email => format!("email_lower = ${n}"),
                FilterField::UserId => format!("user_id = ${n}"),
                FilterField::Blocked => format!("blocked = ${n}"),
                FilterField::EmailVerified => format!("email_verified = ${n}"),
                FilterField::Username => format!("username = ${n}"),
                FilterField::Name => format!("LOWER(name) = ${n}"),
                FilterField::Nickname => format!("LOWER(nickname) = ${n}"),
                FilterField::GivenName => format!("LOWER(given_name) = ${n}"),
                FilterField::FamilyName => format!("LOWER(family_name) = ${n}"),
                FilterField::PhoneNumber => format!("phone_number = ${n}"),
                FilterField::Connection => {
                    format!("connection_id IN (SELECT id FROM connections WHERE tenant_id = $1 AND name = ${n})")
                }
            };
            filter_sql.push_str(" AND ");
            filter_sql.push_str(&cond);
            binds.push(match &f.value {
                FilterValue::Text(s) => Bind::Text(s.clone()),
                FilterValue::Bool(b) => Bind::Bool(*b),
            });
        }
        let (col, is_text) = match sort.field {
            SortField::CreatedAt => ("created_at", false),
            SortField::UpdatedAt => ("updated_at", false),
            SortField::LastLogin => ("last_login", false),
            SortField::LoginsCount => ("logins_count", false),
            SortField::Email => ("email", true),
            SortField::Name => ("name", true),
            SortField::Nickname => ("nickname", true),
            SortField::GivenName => ("given_name", true),
            SortField::FamilyName => ("family_name", true),
            SortField::Username => ("username", true),
            SortField::UserId => ("user_id", true),
        };
        let dir = if sort.descending { "DESC" } else { "ASC" };
        let collate = if is_text { TEXT_ORDER } else { "" };
        // NULLs last in both directions, on both engines; user_id breaks ties so pages are stable.
        let sql = format!(
            "SELECT {USER_COLS} FROM users{filter_sql} ORDER BY ({col} IS NULL), {col}{collate} {dir}, user_id{TEXT_ORDER} {dir} \
             LIMIT {} OFFSET {}",
            page.limit(),
            page.offset()
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(t.as_str());
        for b in &binds {
            query = match b {
                Bind::Text(s) => query.bind(s.clone()),
                Bind::Bool(v) => query.bind(*v),
            };
        }
        let rows = query.fetch_all(&self.read).await?;
        let users = rows.iter().map(user_from_row).collect::<Result<Vec<_>>>()?;
        let total = if with_total {
            let mut query = sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM users{filter_sql}"))).bind(t.as_str());
            for b in &binds {
                query = match b {
                    Bind::Text(s) => query.bind(s.clone()),
                    Bind::Bool(v) => query.bind(*v),
                };
            }
            let n: i64 = query.fetch_one(&self.read).await?.try_get("n")?;
            Some(u64::try_from(n).unwrap_or(0))
        } else {
            None
        };
        Ok(UserList { users, total })
    }

    async fn users_by_email(&self, t: &TenantId, email: &str) -> Result<Vec<User>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND email = $2 ORDER BY created_at, user_id"
        )))
        .bind(t.as_str())
        .bind(email)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn password_hash(&self, t: &TenantId, id: &UserId) -> Result<Option<String>> {
        let row = sqlx::query("SELECT password_hash FROM credentials WHERE tenant_id = $1 AND user_id = $2")
            .bind(t.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| r.try_get("password_hash")).transpose()?)
    }
}

#[async_trait]
impl LogRepo for SqlBackend {
    async fn append_logs(&self, events: &[(TenantId, LogEvent)]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        if let Some(f) = &self.fast {
            return f.append_logs(events).await;
        }
        self.in_tx(move |c| {
            Box::pin(async move {
                for (t, ev) in &events {
                    insert_log(c, t, ev).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn append_effects(&self, t: &TenantId, effects: &Effects) -> Result<()> {
        if let Some(f) = &self.fast {
            return f.append_effects(t.clone(), effects.clone()).await;
        }
        let (t, effects) = (t.clone(), effects.clone());
        self.in_tx(move |c| Box::pin(async move { insert_effects(c, &t, &effects).await })).await
    }

    async fn index_logs_now(&self) -> Result<()> {
        match &self.fast {
            Some(f) => f.index_logs_now().await,
            None => Ok(()),
        }
    }

    async fn logs(&self, t: &TenantId, user: Option<&UserId>, limit: u32) -> Result<Vec<LogRecord>> {
        let cols = "log_id, date, type, description, client_id, user_id, user_name, ip, user_agent, connection, details";
        let rows = match user {
            Some(u) => {
                sqlx::query(AssertSqlSafe(user_logs_sql(cols, limit)))
                .bind(t.as_str())
                .bind(u.as_str())
                .fetch_all(&self.read)
                .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(format!("SELECT {cols} FROM logs WHERE tenant_id = $1 ORDER BY log_id DESC LIMIT {limit}")))
                    .bind(t.as_str())
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(LogRecord {
                    log_id: r.try_get("log_id")?,
                    date: Timestamp::from_millis(r.try_get("date")?),
                    kind: r.try_get("type")?,
                    description: r.try_get("description")?,
                    client_id: r.try_get("client_id")?,
                    user_id: r.try_get::<Option<String>, _>("user_id")?.map(UserId::from_trusted),
                    user_name: r.try_get("user_name")?,
                    ip: r.try_get("ip")?,
                    user_agent: r.try_get("user_agent")?,
                    connection: r.try_get("connection")?,
                    details: r.try_get::<Json<Value>, _>("details")?.0,
                })
            })
            .collect()
    }
}

// The SQL of every repository, written once and compiled for each backend by `include!` from
// `sqlite.rs` and `postgres.rs`, which define `Db`, `BEGIN_WRITE`, `FOR_UPDATE`, `TEXT_ORDER` and
// `migrator()`. Placeholders are `$n` (both engines accept them); JSON goes through `sqlx::types::Json`
// (TEXT on SQLite, JSONB on PostgreSQL); times are BIGINT milliseconds.

use async_trait::async_trait;
use roster_domain::log::LogEvent;
use roster_domain::metadata::Metadata;
use roster_domain::query::{FilterField, FilterValue, Page, Sort, SortField, UserQuery};
use roster_domain::user::{Identity, NewUser, User};
use roster_domain::{ClientId, ConnectionId, Email, TenantId, TenantName, Timestamp, UserId};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row};

use crate::model::{Client, ClientGrant, Connection, LogRecord, NewTenant, SigningKey, Tenant, UserList};
use crate::repo::{ClientRepo, Lifecycle, LogRepo, TenantRepo, UserMutation, UserRepo};

type Conn = <Db as sqlx::Database>::Connection;
type DbRow = <Db as sqlx::Database>::Row;

pub(crate) struct SqlBackend {
    read: sqlx::Pool<Db>,
    write: sqlx::Pool<Db>,
}

const USER_COLS: &str = "user_id, connection_id, email, email_verified, username, phone_number, phone_verified, \
     name, given_name, family_name, nickname, picture, user_metadata, app_metadata, blocked, identities, \
     created_at, updated_at, last_login, last_ip, logins_count, last_password_reset";

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored value is invalid: {what}").into())
}

fn user_from_row(row: &DbRow) -> Result<User> {
    let md = |col: &str| -> Result<Metadata> {
        match row.try_get::<Json<Value>, _>(col)?.0 {
            Value::Object(m) => Ok(Metadata::from_trusted(m)),
            _ => Err(corrupt(col)),
        }
    };
    let identities: Json<Vec<Identity>> = row.try_get("identities")?;
    Ok(User {
        user_id: UserId::from_trusted(row.try_get::<String, _>("user_id")?),
        connection_id: ConnectionId::from_trusted(row.try_get::<String, _>("connection_id")?),
        email: row.try_get::<Option<String>, _>("email")?.map(Email::from_trusted),
        email_verified: row.try_get("email_verified")?,
        username: row.try_get("username")?,
        phone_number: row.try_get("phone_number")?,
        phone_verified: row.try_get("phone_verified")?,
        name: row.try_get("name")?,
        given_name: row.try_get("given_name")?,
        family_name: row.try_get("family_name")?,
        nickname: row.try_get("nickname")?,
        picture: row.try_get("picture")?,
        user_metadata: md("user_metadata")?,
        app_metadata: md("app_metadata")?,
        blocked: row.try_get("blocked")?,
        identities: identities.0,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
        last_login: row.try_get::<Option<i64>, _>("last_login")?.map(Timestamp::from_millis),
        last_ip: row.try_get("last_ip")?,
        logins_count: row.try_get("logins_count")?,
        last_password_reset: row.try_get::<Option<i64>, _>("last_password_reset")?.map(Timestamp::from_millis),
    })
}

fn string_list(v: Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.into_iter().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

fn client_from_row(row: &DbRow) -> Result<Client> {
    Ok(Client {
        client_id: ClientId::from_trusted(row.try_get::<String, _>("client_id")?),
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        app_type: row.try_get("app_type")?,
        is_management: row.try_get("is_management")?,
        grant_types: string_list(row.try_get::<Json<Value>, _>("grant_types")?.0),
        callbacks: string_list(row.try_get::<Json<Value>, _>("callbacks")?.0),
        allowed_logout_urls: string_list(row.try_get::<Json<Value>, _>("allowed_logout_urls")?.0),
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
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
    sqlx::query(
        "INSERT INTO logs (tenant_id, log_id, date, type, description, ip, user_agent, client_id, client_name, \
         user_id, user_name, connection, connection_id, audience, scope, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(t.as_str())
    .bind(ulid::Ulid::generate().to_string())
    .bind(ev.date.millis())
    .bind(ev.kind.code())
    .bind(&ev.description)
    .bind(ev.ip.as_deref())
    .bind(ev.user_agent.as_deref())
    .bind(ev.client_id.as_ref().map(ClientId::as_str))
    .bind(ev.client_name.as_deref())
    .bind(ev.user_id.as_ref().map(UserId::as_str))
    .bind(ev.user_name.as_deref())
    .bind(ev.connection.as_deref())
    .bind(ev.connection_id.as_ref().map(ConnectionId::as_str))
    .bind(ev.audience.as_deref())
    .bind(ev.scope.as_deref())
    .bind(Json(&ev.details))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn email_lower(u: &User) -> Option<String> {
    u.email.as_ref().map(|e| e.as_str().to_lowercase())
}

#[async_trait]
impl Lifecycle for SqlBackend {
    async fn migrate(&self) -> Result<()> {
        migrator().run(&self.write).await?;
        Ok(())
    }
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
    async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

#[async_trait]
impl TenantRepo for SqlBackend {
    async fn create_tenant(&self, nt: &NewTenant) -> Result<()> {
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
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
            sqlx::query(
                "INSERT INTO connections (tenant_id, id, name, strategy, options, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(t.as_str())
            .bind(c.id.as_str())
            .bind(&c.name)
            .bind(&c.strategy)
            .bind(Json(&c.options))
            .bind(c.created_at.millis())
            .execute(&mut *tx)
            .await?;
        }
        for c in &nt.clients {
            sqlx::query(
                "INSERT INTO clients (tenant_id, client_id, name, secret_hash, app_type, is_management, grant_types, \
                 callbacks, allowed_logout_urls, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(t.as_str())
            .bind(c.client_id.as_str())
            .bind(&c.name)
            .bind(&c.secret_hash)
            .bind(&c.app_type)
            .bind(c.is_management)
            .bind(Json(&c.grant_types))
            .bind(Json(&c.callbacks))
            .bind(Json(&c.allowed_logout_urls))
            .bind(c.created_at.millis())
            .execute(&mut *tx)
            .await?;
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
        tx.commit().await?;
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
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        let done = sqlx::query("DELETE FROM tenants WHERE name = $1").bind(name.as_str()).execute(&mut *tx).await?;
        tx.commit().await?;
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
        let row = sqlx::query(
            "SELECT client_id, name, secret_hash, app_type, is_management, grant_types, callbacks, allowed_logout_urls, \
             created_at FROM clients WHERE tenant_id = $1 AND client_id = $2",
        )
        .bind(t.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn client_grant(&self, t: &TenantId, client: &ClientId, audience: &str) -> Result<Option<ClientGrant>> {
        let row = sqlx::query(
            "SELECT id, client_id, audience, scope FROM client_grants WHERE tenant_id = $1 AND client_id = $2 AND audience = $3",
        )
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
}

#[async_trait]
impl UserRepo for SqlBackend {
    async fn create_user(&self, t: &TenantId, new: &NewUser, log: &LogEvent) -> Result<()> {
        let u = &new.user;
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO users (tenant_id, email_lower, {USER_COLS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
        )))
        .bind(t.as_str())
        .bind(email_lower(u))
        .bind(u.user_id.as_str())
        .bind(u.connection_id.as_str())
        .bind(u.email.as_ref().map(Email::as_str))
        .bind(u.email_verified)
        .bind(u.username.as_deref())
        .bind(u.phone_number.as_deref())
        .bind(u.phone_verified)
        .bind(u.name.as_deref())
        .bind(u.given_name.as_deref())
        .bind(u.family_name.as_deref())
        .bind(u.nickname.as_deref())
        .bind(u.picture.as_deref())
        .bind(Json(u.user_metadata.as_map()))
        .bind(Json(u.app_metadata.as_map()))
        .bind(u.blocked)
        .bind(Json(&u.identities))
        .bind(u.created_at.millis())
        .bind(u.updated_at.millis())
        .bind(u.last_login.map(Timestamp::millis))
        .bind(u.last_ip.as_deref())
        .bind(u.logins_count)
        .bind(u.last_password_reset.map(Timestamp::millis))
        .execute(&mut *tx)
        .await?;
        if let Some(hash) = &new.password_hash {
            sqlx::query("INSERT INTO credentials (tenant_id, user_id, password_hash, updated_at) VALUES ($1, $2, $3, $4)")
                .bind(t.as_str())
                .bind(u.user_id.as_str())
                .bind(hash)
                .bind(u.created_at.millis())
                .execute(&mut *tx)
                .await?;
        }
        insert_log(&mut tx, t, log).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn user(&self, t: &TenantId, id: &UserId) -> Result<Option<User>> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND user_id = $2")))
            .bind(t.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn update_user(
        &self,
        t: &TenantId,
        id: &UserId,
        mutate: UserMutation,
        new_password_hash: Option<String>,
        log: &LogEvent,
    ) -> Result<Option<User>> {
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND user_id = $2{FOR_UPDATE}"
        )))
        .bind(t.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut u = user_from_row(&row)?;
        mutate(&mut u).map_err(StoreError::Rejected)?;
        sqlx::query(
            "UPDATE users SET email = $3, email_lower = $4, email_verified = $5, username = $6, phone_number = $7, \
             phone_verified = $8, name = $9, given_name = $10, family_name = $11, nickname = $12, picture = $13, \
             user_metadata = $14, app_metadata = $15, blocked = $16, identities = $17, updated_at = $18, \
             last_login = $19, last_ip = $20, logins_count = $21, last_password_reset = $22 \
             WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(t.as_str())
        .bind(id.as_str())
        .bind(u.email.as_ref().map(Email::as_str))
        .bind(email_lower(&u))
        .bind(u.email_verified)
        .bind(u.username.as_deref())
        .bind(u.phone_number.as_deref())
        .bind(u.phone_verified)
        .bind(u.name.as_deref())
        .bind(u.given_name.as_deref())
        .bind(u.family_name.as_deref())
        .bind(u.nickname.as_deref())
        .bind(u.picture.as_deref())
        .bind(Json(u.user_metadata.as_map()))
        .bind(Json(u.app_metadata.as_map()))
        .bind(u.blocked)
        .bind(Json(&u.identities))
        .bind(u.updated_at.millis())
        .bind(u.last_login.map(Timestamp::millis))
        .bind(u.last_ip.as_deref())
        .bind(u.logins_count)
        .bind(u.last_password_reset.map(Timestamp::millis))
        .execute(&mut *tx)
        .await?;
        if let Some(hash) = new_password_hash {
            sqlx::query(
                "INSERT INTO credentials (tenant_id, user_id, password_hash, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
            )
            .bind(t.as_str())
            .bind(id.as_str())
            .bind(hash)
            .bind(u.updated_at.millis())
            .execute(&mut *tx)
            .await?;
        }
        insert_log(&mut tx, t, log).await?;
        tx.commit().await?;
        Ok(Some(u))
    }

    async fn delete_user(&self, t: &TenantId, id: &UserId, log: &LogEvent) -> Result<bool> {
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        let done = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND user_id = $2")
            .bind(t.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_log(&mut tx, t, log).await?;
        tx.commit().await?;
        Ok(true)
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
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        for (t, ev) in events {
            insert_log(&mut tx, t, ev).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn logs(&self, t: &TenantId, user: Option<&UserId>, limit: u32) -> Result<Vec<LogRecord>> {
        let cols = "log_id, date, type, description, client_id, user_id, details";
        let rows = match user {
            Some(u) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {cols} FROM logs WHERE tenant_id = $1 AND user_id = $2 ORDER BY log_id DESC LIMIT {limit}"
                )))
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
                    details: r.try_get::<Json<Value>, _>("details")?.0,
                })
            })
            .collect()
    }
}

//! PostgreSQL backend: one pool; row locks (`SELECT … FOR UPDATE`) serialize read-modify-write
//! transactions on the same row, so concurrent metadata merges never lose a key.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::{Result, StoreError, StoreOptions};

type Db = sqlx::Postgres;
const BEGIN_WRITE: &str = "BEGIN";
const FOR_UPDATE: &str = " FOR UPDATE";
/// Byte-wise text order, so listings sort the same as on SQLite whatever the server locale.
const TEXT_ORDER: &str = " COLLATE \"C\"";

fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/postgres")
}

include!("sql_common.rs");

pub(crate) async fn connect(opts: &StoreOptions) -> Result<SqlBackend> {
    let conn = PgConnectOptions::from_str(&opts.url).map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
    let pool = PgPoolOptions::new()
        .max_connections(opts.max_connections.max(2))
        .acquire_timeout(opts.acquire_timeout)
        .connect_with(conn)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(SqlBackend { read: pool.clone(), write: pool })
}

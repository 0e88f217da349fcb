//! Decoding rows into domain values, written once for every driver: the sqlx rows of both backends and
//! the rusqlite rows of SQLite's fast read path implement [`Cols`].

use roster_domain::user::{Identity, User};
use roster_domain::{ClientId, ConnectionId, Email, Metadata, Timestamp, UserId};
use serde_json::Value;

use crate::model::{AttackCounter, Client};
use crate::{Result, StoreError};

/// Typed access to a row's columns by name.
pub(crate) trait Cols {
    fn text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<Option<i64>>;
    fn flag(&self, col: &str) -> Result<bool>;
    fn json(&self, col: &str) -> Result<Value>;
    /// A JSON column straight into a type (drivers holding the text parse it once, not via `Value`).
    fn parse<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T> {
        serde_json::from_value(self.json(col)?).map_err(|_| corrupt(col))
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored value is invalid: {what}").into())
}

fn req_text<R: Cols>(r: &R, col: &str) -> Result<String> {
    r.text(col)?.ok_or_else(|| corrupt(col))
}

fn req_int<R: Cols>(r: &R, col: &str) -> Result<i64> {
    r.int(col)?.ok_or_else(|| corrupt(col))
}

fn metadata<R: Cols>(r: &R, col: &str) -> Result<Metadata> {
    match r.json(col)? {
        Value::Object(m) => Ok(Metadata::from_trusted(m)),
        _ => Err(corrupt(col)),
    }
}

pub(crate) fn string_list(v: Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.into_iter().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// Columns: `USER_COLS` of `sql_common.rs`.
pub(crate) fn user<R: Cols>(r: &R) -> Result<User> {
    let identities: Vec<Identity> = r.parse("identities")?;
    Ok(User {
        user_id: UserId::from_trusted(req_text(r, "user_id")?),
        connection_id: ConnectionId::from_trusted(req_text(r, "connection_id")?),
        email: r.text("email")?.map(Email::from_trusted),
        email_verified: r.flag("email_verified")?,
        username: r.text("username")?,
        phone_number: r.text("phone_number")?,
        phone_verified: r.flag("phone_verified")?,
        name: r.text("name")?,
        given_name: r.text("given_name")?,
        family_name: r.text("family_name")?,
        nickname: r.text("nickname")?,
        picture: r.text("picture")?,
        user_metadata: metadata(r, "user_metadata")?,
        app_metadata: metadata(r, "app_metadata")?,
        blocked: r.flag("blocked")?,
        identities,
        created_at: Timestamp::from_millis(req_int(r, "created_at")?),
        updated_at: Timestamp::from_millis(req_int(r, "updated_at")?),
        last_login: r.int("last_login")?.map(Timestamp::from_millis),
        last_ip: r.text("last_ip")?,
        logins_count: req_int(r, "logins_count")?,
        last_password_reset: r.int("last_password_reset")?.map(Timestamp::from_millis),
    })
}

/// Columns: `CLIENT_COLS` of `sql_common.rs`.
pub(crate) fn client<R: Cols>(r: &R) -> Result<Client> {
    Ok(Client {
        client_id: ClientId::from_trusted(req_text(r, "client_id")?),
        name: req_text(r, "name")?,
        secret_hash: req_text(r, "secret_hash")?,
        app_type: req_text(r, "app_type")?,
        is_management: r.flag("is_management")?,
        grant_types: string_list(r.json("grant_types")?),
        callbacks: string_list(r.json("callbacks")?),
        allowed_logout_urls: string_list(r.json("allowed_logout_urls")?),
        token_endpoint_auth_method: req_text(r, "token_endpoint_auth_method")?,
        is_first_party: r.flag("is_first_party")?,
        description: req_text(r, "description")?,
        created_at: Timestamp::from_millis(req_int(r, "created_at")?),
        token_endpoint_ip_header_trusted: r.flag("token_endpoint_ip_header_trusted")?,
    })
}

/// Columns: `params::COUNTER_COLS`.
pub(crate) fn counter<R: Cols>(r: &R) -> Result<AttackCounter> {
    Ok(AttackCounter {
        kind: req_text(r, "kind")?,
        key: req_text(r, "key")?,
        identifier: r.text("identifier")?,
        ip: r.text("ip")?,
        connection: r.text("connection")?,
        user_id: r.text("user_id")?.map(UserId::from_trusted),
        count: req_int(r, "count")?,
        window_start: Timestamp::from_millis(req_int(r, "window_start")?),
        last_at: Timestamp::from_millis(req_int(r, "last_at")?),
        blocked_at: r.int("blocked_at")?.map(Timestamp::from_millis),
        notified_at: r.int("notified_at")?.map(Timestamp::from_millis),
    })
}

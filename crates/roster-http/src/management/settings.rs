//! `/api/v2/tenants/settings` and `/api/v2/branding`: the tenant's name and support contacts (Auth0's
//! fields), the account portal (`account_portal`, Roster's: editable fields, profile schema, terms,
//! re-authentication window) and the look of hosted pages (Auth0's `/branding` shape).
//!
//! A PATCH replaces the properties it names (objects inside `account_portal` and `branding` replace
//! as a whole, `null` restores a default); the result is validated as a whole before it is stored, so
//! the portal never meets settings it cannot honour.

use axum::Json;
use axum::response::{IntoResponse, Response};
use roster_domain::account::{AccountSettings, Branding, default_account_settings, default_branding};
use roster_domain::log::LogType;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::api_event;
use super::clients::{invalid, machine_only};
use super::users::ErrorBody;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authorized, ReadBranding, ReadTenantSettings, UpdateBranding, UpdateTenantSettings};

/// Auth0's tenant settings Roster keeps, and the account portal's.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TenantSettingsSchema {
    /// The name users see (hosted pages, mails).
    friendly_name: Option<String>,
    picture_url: Option<String>,
    support_email: Option<String>,
    support_url: Option<String>,
    /// The self-service account portal (Roster): `enabled`, `editable_fields`, `reauthentication_window`
    /// (seconds), `terms` (`{version, url}` or null), `profile_schema` (JSON Schema subset over
    /// `user_metadata`), `visible_app_metadata` (key → label).
    account_portal: Option<Value>,
}

/// `{"colors":{"primary","page_background"},"logo_url"}`
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BrandingSchema {
    colors: Option<Value>,
    logo_url: Option<String>,
}

const ROOT_KEYS: &[&str] = &["friendly_name", "picture_url", "support_email", "support_url"];

/// The settings as `GET` shows them: every default filled in.
fn settings_view(stored: &Value) -> Value {
    let mut out = Map::new();
    for k in ROOT_KEYS {
        out.insert((*k).to_owned(), stored.get(*k).cloned().unwrap_or(Value::Null));
    }
    let mut portal = default_account_settings();
    if let (Value::Object(p), Some(Value::Object(s))) = (&mut portal, stored.get("account_portal")) {
        for (k, v) in s {
            p.insert(k.clone(), v.clone());
        }
    }
    out.insert("account_portal".into(), portal);
    Value::Object(out)
}

fn branding_view(stored: &Value) -> Value {
    let mut b = default_branding();
    if let (Value::Object(d), Some(Value::Object(s))) = (&mut b, stored.get("branding")) {
        for (k, v) in s {
            if k == "colors" {
                if let (Some(Value::Object(dc)), Value::Object(sc)) = (d.get_mut("colors"), v) {
                    for (ck, cv) in sc {
                        dc.insert(ck.clone(), cv.clone());
                    }
                }
            } else {
                d.insert(k.clone(), v.clone());
            }
        }
    }
    b
}

fn text_setting(k: &str, v: &Value) -> Result<(), ApiError> {
    let ok = match v {
        Value::Null => true,
        Value::String(s) => match k {
            "friendly_name" => !s.trim().is_empty() && s.chars().count() <= 128 && !s.chars().any(char::is_control),
            "support_email" => roster_domain::Email::parse(s).is_ok(),
            _ => url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) && s.len() <= 2048,
        },
        _ => false,
    };
    if ok { Ok(()) } else { Err(invalid(format!("{k} has an invalid value"))) }
}

/// The tenant's stored settings object.
async fn stored_settings(t: &crate::tenant::TenantCtx) -> Result<Map<String, Value>, ApiError> {
    Ok(match t.store.tenant_settings().await? {
        Value::Object(o) => o,
        _ => Map::new(),
    })
}

/// The object under `key`, taken out of `map` (empty when absent or not an object).
fn take_object(map: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match map.remove(key) {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    }
}

/// Each key of `patch` replaces its value in `into`; `null` removes it (restoring the default), except
/// for the keys in `nullable`, where `null` is a value.
fn merge(into: &mut Map<String, Value>, patch: Map<String, Value>, nullable: &[&str]) {
    for (k, v) in patch {
        if v.is_null() && !nullable.contains(&k.as_str()) {
            into.remove(&k);
        } else {
            into.insert(k, v);
        }
    }
}

/// The tenant's settings.
#[utoipa::path(get, path = "/tenants/settings", tag = "Tenants",
    responses((status = 200, body = TenantSettingsSchema), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:tenant_settings"])))]
pub async fn get_settings(auth: Authorized<ReadTenantSettings>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let stored = auth.tenant.store.tenant_settings().await?;
    Ok(Json(settings_view(&stored)).into_response())
}

/// Change the tenant's settings (given properties replace; `account_portal` merges one level deep).
#[utoipa::path(patch, path = "/tenants/settings", tag = "Tenants", request_body = TenantSettingsSchema,
    responses((status = 200, body = TenantSettingsSchema), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:tenant_settings"])))]
pub async fn patch_settings(
    auth: Authorized<UpdateTenantSettings>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let mut stored = stored_settings(&auth.tenant).await?;
    for (k, v) in body {
        match k.as_str() {
            k if ROOT_KEYS.contains(&k) => {
                text_setting(k, &v)?;
                stored.insert(k.to_owned(), v);
            }
            "account_portal" => {
                let Value::Object(patch) = v else { return Err(invalid("account_portal must be an object")) };
                let mut portal = take_object(&mut stored, "account_portal");
                merge(&mut portal, patch, &["terms"]);
                let portal = Value::Object(portal);
                AccountSettings::parse(&portal).map_err(invalid)?;
                stored.insert("account_portal".into(), portal);
            }
            other => return Err(invalid(format!("Additional properties not allowed: {other}"))),
        }
    }
    let stored = Value::Object(stored);
    let ev = api_event(&auth, LogType::Sapi, "Update tenant settings");
    auth.tenant.store.put_tenant_settings(&stored, ev).await?;
    Ok(Json(settings_view(&stored)).into_response())
}

/// The look of hosted pages.
#[utoipa::path(get, path = "/branding", tag = "Branding",
    responses((status = 200, body = BrandingSchema), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["read:branding"])))]
pub async fn get_branding(auth: Authorized<ReadBranding>) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let stored = auth.tenant.store.tenant_settings().await?;
    Ok(Json(branding_view(&stored)).into_response())
}

/// Change the look of hosted pages (`colors` merges; `null` restores a default).
#[utoipa::path(patch, path = "/branding", tag = "Branding", request_body = BrandingSchema,
    responses((status = 200, body = BrandingSchema), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = ["update:branding"])))]
pub async fn patch_branding(
    auth: Authorized<UpdateBranding>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    machine_only(&auth)?;
    let mut stored = stored_settings(&auth.tenant).await?;
    let mut branding = take_object(&mut stored, "branding");
    let mut rest = Map::new();
    for (k, v) in body {
        match (k.as_str(), v) {
            ("colors", Value::Object(c)) => {
                let mut colors = take_object(&mut branding, "colors");
                merge(&mut colors, c, &[]);
                branding.insert("colors".into(), Value::Object(colors));
            }
            (_, v) => {
                rest.insert(k, v);
            }
        }
    }
    merge(&mut branding, rest, &[]);
    let branding = Value::Object(branding);
    Branding::parse(&branding, None).map_err(invalid)?;
    stored.insert("branding".into(), branding);
    let stored = Value::Object(stored);
    let ev = api_event(&auth, LogType::Sapi, "Update branding");
    auth.tenant.store.put_tenant_settings(&stored, ev).await?;
    Ok(Json(branding_view(&stored)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn views_fill_defaults() {
        let v = settings_view(&json!({"friendly_name": "Acme", "account_portal": {"reauthentication_window": 600}}));
        assert_eq!(v["friendly_name"], "Acme");
        assert_eq!(v["account_portal"]["reauthentication_window"], 600);
        assert_eq!(v["account_portal"]["editable_fields"].as_array().map(Vec::len), Some(5));
        let b = branding_view(&json!({"branding": {"colors": {"primary": "#123456"}}}));
        assert_eq!(b["colors"]["primary"], "#123456");
        assert_eq!(b["colors"]["page_background"], "#f4f5f7");
    }
}

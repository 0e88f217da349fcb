//! The Management API's OpenAPI 3.1 document, generated from the handlers' annotations.
//!
//! `docs/openapi.json` is the committed copy; a test fails when it drifts from the code
//! (`UPDATE_OPENAPI=1 cargo test -p roster-http openapi` rewrites it).

use axum::Json;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::{Modify, OpenApi};

use crate::extract::MgmtTenant;
use crate::management::{attack, clients, connections, emails, settings, tickets, users};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Roster Management API", description = "Auth0-compatible user management (`/t/{tenant}/api/v2`).",
         license(name = "Apache-2.0")),
    paths(users::list_users, users::get_user, users::create_user, users::update_user, users::delete_user, users::users_by_email,
          clients::list_clients, clients::get_client, clients::create_client, clients::update_client, clients::delete_client,
          clients::rotate_secret,
          connections::list_connections, connections::get_connection, connections::create_connection,
          connections::update_connection, connections::delete_connection,
          emails::get_provider, emails::create_provider, emails::update_provider, emails::delete_provider,
          emails::create_template, emails::get_template, emails::put_template, emails::patch_template,
          emails::list_outbox, emails::retry_outbox,
          tickets::password_change, tickets::email_verification, tickets::verification_email_job, tickets::get_job,
          attack::get_brute_force, attack::patch_brute_force_settings, attack::list_by_identifier, attack::delete_by_identifier,
          attack::list_by_user, attack::delete_by_user, attack::get_throttling, attack::patch_throttling_settings,
          attack::get_ip_block, attack::delete_ip_block,
          settings::get_settings, settings::patch_settings, settings::get_branding, settings::patch_branding),
    components(schemas(users::UserSchema, users::IdentitySchema, users::CreateUserBody, users::PatchUserSchema, users::ErrorBody,
                       clients::ClientSchema, clients::CreateClientBody, clients::UpdateClientBody,
                       connections::ConnectionSchema, connections::CreateConnectionBody, connections::UpdateConnectionBody,
                       emails::EmailProviderSchema, emails::CreateProviderBody, emails::UpdateProviderBody,
                       emails::EmailTemplateSchema, emails::TemplateBody, emails::OutboxSchema,
                       tickets::PasswordChangeTicketBody, tickets::EmailVerificationTicketBody, tickets::TicketSchema,
                       tickets::VerificationJobBody, tickets::JobSchema, tickets::IdentityRef,
                       attack::BruteForceSchema, attack::BlocksSchema, attack::ThrottlingSchema,
                       settings::TenantSettingsSchema, settings::BrandingSchema)),
    modifiers(&BearerAuth),
    tags((name = "Users", description = "Users and their metadata"),
         (name = "Clients", description = "Applications (OAuth clients); secrets are shown only at creation and rotation"),
         (name = "Connections", description = "Database connections and their options"),
         (name = "Emails", description = "The email provider, email templates and the outbox of queued and sent mail"),
         (name = "Tickets", description = "One-time password-change and email-verification links"),
         (name = "Jobs", description = "Asynchronous work: verification emails"),
         (name = "Attack protection", description = "Brute-force protection and suspicious-IP throttling"),
         (name = "User blocks", description = "Brute-force blocks (an identifier from an IP), listed and lifted"),
         (name = "Tenants", description = "Tenant settings, including the self-service account portal's"),
         (name = "Branding", description = "The look of hosted pages and the account portal"))
)]
pub struct ManagementApi;

/// The document, without servers (they depend on the tenant and the public URL).
pub fn document() -> utoipa::openapi::OpenApi {
    ManagementApi::openapi()
}

/// Pretty JSON of [`document`], as committed in `docs/openapi.json`.
pub fn document_json() -> String {
    let mut s = document().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

/// `GET /t/{tenant}/api/v2/openapi.json`: the document with this tenant's server URL.
pub async fn serve(MgmtTenant(t): MgmtTenant) -> Response {
    let mut doc = document();
    doc.servers = Some(vec![Server::new(format!("{}api/v2", t.issuer))]);
    Json(doc).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_is_3_1_and_committed_copy_is_current() {
        let doc = document_json();
        assert!(doc.contains("\"openapi\": \"3.1"), "OpenAPI 3.1 expected");
        for path in ["/users", "/users/{id}", "/users-by-email"] {
            assert!(doc.contains(&format!("\"{path}\"")), "{path} documented");
        }
        let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(committed_path, &doc).expect("write docs/openapi.json");
        }
        let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
        assert!(
            committed == doc,
            "docs/openapi.json differs from the code; run `UPDATE_OPENAPI=1 cargo test -p roster-http openapi` and commit it"
        );
    }
}

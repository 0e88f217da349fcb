//! Roster's transactional email: templates, transports and the outbox relay.
//!
//! - [`template`]: Auth0-compatible Liquid templates (embedded defaults or an admin's custom ones);
//!   [`text`] derives a plain-text part from HTML.
//! - [`transport`]: SMTP (lettre) or `.eml` files; [`provider`]: a tenant's SMTP settings, sealed at rest.
//! - [`relay`]: the task in every node that leases outbox rows and delivers them.
//!
//! This crate must never render user-supplied values as template source, put a CR or LF from a value
//! into a header, or log a link or a rendered body.

pub mod provider;
pub mod relay;
pub mod template;
pub mod text;
pub mod transport;

pub use relay::{Relay, RelayConfig, attach_link};
pub use template::{CustomTemplate, Rendered, Renderer, TemplateError, TemplateName};
pub use text::html_to_text;
pub use transport::{SmtpSettings, TlsMode, Transport};

/// Text fit for a header: control characters (CR, LF, …) become spaces, runs of spaces collapse.
pub fn header_text(s: &str) -> String {
    let spaced: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `s` is a mailbox (`a@b.example` or `Name <a@b.example>`) a mail can be sent from or to.
pub fn is_mailbox(s: &str) -> bool {
    !s.chars().any(char::is_control) && s.parse::<lettre::message::Mailbox>().is_ok()
}

/// Everything checked when an admin saves a template: it parses, renders against sample values, and
/// its `from` (when given) renders to a valid mailbox.
pub fn check_custom(renderer: &Renderer, name: TemplateName, t: &CustomTemplate) -> Result<(), String> {
    renderer.validate(t).map_err(|e| e.to_string())?;
    let rendered = renderer.render(name, Some(t), &template::sample_vars()).map_err(|e| e.to_string())?;
    match rendered.from {
        Some(from) if !is_mailbox(&from) => Err(format!("from: \"{from}\" is not an email address")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_strips_line_breaks() {
        assert_eq!(header_text("Hi\r\nBcc: evil@x.example\t x"), "Hi Bcc: evil@x.example x");
    }

    #[test]
    fn mailboxes() {
        assert!(is_mailbox("no-reply@example.com"));
        assert!(is_mailbox("Acme Support <support@example.com>"));
        assert!(!is_mailbox("not an address"));
        assert!(!is_mailbox("a@example.com\r\nBcc: b@example.com"));
    }

    #[test]
    fn custom_templates_are_checked_whole() {
        let r = Renderer::new();
        let t =
            |from: &str| CustomTemplate { body: "<p>Hi {{ user.email }}</p>".into(), subject: "Hi".into(), from: from.into() };
        assert_eq!(check_custom(&r, TemplateName::VerifyEmail, &t("{{ friendly_name }} <support@example.com>")), Ok(()));
        assert_eq!(check_custom(&r, TemplateName::VerifyEmail, &t("")), Ok(()));
        assert!(check_custom(&r, TemplateName::VerifyEmail, &t("nobody")).is_err());
        let broken = CustomTemplate { body: "<p>\n{% if x %}\n".into(), subject: "s".into(), from: String::new() };
        assert!(check_custom(&r, TemplateName::VerifyEmail, &broken).is_err_and(|e| e.contains("line")));
    }
}

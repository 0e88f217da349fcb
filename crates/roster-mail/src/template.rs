//! Email templates: Auth0's template names plus Roster's, their embedded defaults, and rendering of
//! defaults and of an admin's custom templates (Liquid, Auth0 variable names).
//!
//! What a template sees. The caller's JSON variables ([`sample_vars`] shows every documented one), plus
//! `lang`. A missing key renders empty at any depth, as in Auth0, rather than failing the mail.
//!
//! Security, the reason this module exists as it does:
//! - User-supplied values are only ever variables, never template source: liquid does not re-parse
//!   values, so `{{ 7*7 }}` in a user's name is printed as those characters. Nothing here may build
//!   template source from a value.
//! - Liquid does not escape. The HTML body is rendered from a copy of the variables in which every
//!   string (and object key), at any depth, is already HTML-escaped, so `<script>` in a name arrives as
//!   `&lt;script&gt;`. Templates therefore must NOT apply `| escape` (or `escape_once`) to variables:
//!   it would escape twice and show `&amp;lt;`. The subject, the `from` and the text part are rendered
//!   from the raw values.
//! - The rendered subject and `from` go into mail headers: every control character (CR, LF…) becomes a
//!   space, whitespace collapses and the ends are trimmed, so a value cannot add a header.
//!
//! Embedded defaults live in `templates/{name}/{subject.liquid, body.html.liquid, body.txt.liquid}`,
//! one file per part, in English and French (`{% if lang == "fr" %}`; any other language gets
//! English). What they share is in `templates/_layout/`: `page.*.liquid` is the frame that a body is
//! put into at the `<!-- roster:content -->` marker, and a body puts the `greeting` and `button`
//! snippets at `<!-- roster:greeting -->` and `<!-- roster:button -->`. The markers are replaced as plain
//! text once, before parsing, so [`default_source`] gives complete templates that an admin can copy.
//! A body tells the frame its button label (`{% assign action = … %}`) and the footer's reason
//! (`{% capture footer %}`). The text part of a default is its own file, tidied and wrapped to 72
//! columns after rendering; a custom template (HTML only, as in Auth0) gets its text part from
//! [`html_to_text`].
//!
//! This module renders; it never sends, stores or logs anything, least of all the variables (they hold
//! ticket URLs).

mod diagnostics;
mod vars;

use std::fmt;
use std::sync::OnceLock;

use liquid::{Parser, ParserBuilder, Template};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::text::{html_to_text, tidy_lines, wrap};
use vars::{Escape, Globals};

/// Column at which text parts are wrapped.
const TEXT_WIDTH: usize = 72;

/// A template name: Auth0's, plus Roster's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateName {
    /// Verify your email address (`url`).
    VerifyEmail,
    /// Reset your password (`url`).
    ResetEmail,
    /// Welcome, after verification.
    WelcomeEmail,
    /// Account blocked after too many failed attempts from `user.source_ip` (unblock link `url`).
    BlockedAccount,
    /// Auth0's legacy name for [`TemplateName::ResetEmail`]; the same default content.
    ChangePassword,
    /// Notice that the password was changed (no link).
    PasswordReset,
    /// Sent to the NEW address to confirm an email change (`url`, `new_email`).
    ChangeEmailVerify,
    /// Sent to the OLD address: the address is being changed to `new_email`; `url` if it wasn't you.
    ChangeEmailNotice,
    /// Someone tried to sign up with an address that already has an account (optional reset `url`).
    DuplicateSignup,
    /// Confirmation that the account was deleted.
    AccountDeleted,
}

impl TemplateName {
    pub const ALL: [TemplateName; 10] = [
        TemplateName::VerifyEmail,
        TemplateName::ResetEmail,
        TemplateName::WelcomeEmail,
        TemplateName::BlockedAccount,
        TemplateName::ChangePassword,
        TemplateName::PasswordReset,
        TemplateName::ChangeEmailVerify,
        TemplateName::ChangeEmailNotice,
        TemplateName::DuplicateSignup,
        TemplateName::AccountDeleted,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TemplateName::VerifyEmail => "verify_email",
            TemplateName::ResetEmail => "reset_email",
            TemplateName::WelcomeEmail => "welcome_email",
            TemplateName::BlockedAccount => "blocked_account",
            TemplateName::ChangePassword => "change_password",
            TemplateName::PasswordReset => "password_reset",
            TemplateName::ChangeEmailVerify => "change_email_verify",
            TemplateName::ChangeEmailNotice => "change_email_notice",
            TemplateName::DuplicateSignup => "duplicate_signup",
            TemplateName::AccountDeleted => "account_deleted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An admin's template. Auth0 custom templates are HTML only; `subject` and `from` are Liquid too.
/// An empty `from` means "the default sender".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomTemplate {
    pub body: String,
    pub subject: String,
    pub from: String,
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// One line, safe for the `Subject` header.
    pub subject: String,
    pub html: String,
    pub text: String,
    /// `Some` only for a custom template whose `from` renders to something; one line.
    pub from: Option<String>,
}

/// What is wrong with a template, for the admin who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {}{message}", line_prefix(*.line))]
pub struct TemplateError {
    /// `"body"`, `"subject"` or `"from"` (`"text"` for the text part of a default).
    pub field: &'static str,
    /// 1-based line in that field, when it could be told.
    pub line: Option<usize>,
    /// Liquid's diagnostic, on one line.
    pub message: String,
}

fn line_prefix(line: Option<usize>) -> String {
    line.map(|line| format!("line {line}: ")).unwrap_or_default()
}

/// Parses the embedded defaults once; renders defaults and custom templates.
pub struct Renderer {
    parser: Parser,
    defaults: Vec<Compiled>,
}

struct Compiled {
    subject: Template,
    html: Template,
    text: Template,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    /// Parses every embedded default.
    ///
    /// # Panics
    /// If an embedded default does not parse: a build defect, caught by the tests.
    pub fn new() -> Self {
        let parser = ParserBuilder::with_stdlib().build().expect("liquid's standard library builds");
        let defaults = TemplateName::ALL
            .iter()
            .map(|&name| {
                let (subject, html, text) = default_source(name);
                let parse = |part: &str, source: &str| {
                    parser.parse(source).unwrap_or_else(|e| panic!("embedded template {name}/{part} does not parse: {e}"))
                };
                Compiled { subject: parse("subject", subject), html: parse("html", html), text: parse("text", text) }
            })
            .collect();
        Self { parser, defaults }
    }

    /// Checks an admin's template: each part must parse and render against [`sample_vars`], which
    /// catches syntax errors, unknown filters and `{% include %}` of partials that do not exist.
    pub fn validate(&self, template: &CustomTemplate) -> Result<(), TemplateError> {
        let vars = vars::with_lang(&sample_vars());
        let raw = Globals::new(&vars, Escape::None);
        let escaped = Globals::new(&vars, Escape::Html);
        let parts = [("body", &template.body, &escaped), ("subject", &template.subject, &raw), ("from", &template.from, &raw)];
        for (field, source, globals) in parts {
            let compiled = self.compile(field, source)?;
            run(field, source, &compiled, globals)?;
        }
        Ok(())
    }

    /// Renders template `name`: the admin's `custom` one if given, else the embedded default.
    pub fn render(&self, name: TemplateName, custom: Option<&CustomTemplate>, vars: &Json) -> Result<Rendered, TemplateError> {
        let vars = vars::with_lang(vars);
        let raw = Globals::new(&vars, Escape::None);
        let escaped = Globals::new(&vars, Escape::Html);

        let Some(custom) = custom else {
            let compiled = &self.defaults[name.index()];
            let (subject, html, text) = default_source(name);
            return Ok(Rendered {
                subject: vars::header_line(&run("subject", subject, &compiled.subject, &raw)?),
                html: drop_blank_lines(&run("body", html, &compiled.html, &escaped)?),
                text: wrap(&tidy_lines(&run("text", text, &compiled.text, &raw)?), TEXT_WIDTH),
                from: None,
            });
        };

        let html = run("body", &custom.body, &self.compile("body", &custom.body)?, &escaped)?;
        let subject = run("subject", &custom.subject, &self.compile("subject", &custom.subject)?, &raw)?;
        let from = if custom.from.trim().is_empty() {
            None
        } else {
            Some(vars::header_line(&run("from", &custom.from, &self.compile("from", &custom.from)?, &raw)?))
                .filter(|from| !from.is_empty())
        };
        Ok(Rendered { subject: vars::header_line(&subject), text: wrap(&html_to_text(&html), TEXT_WIDTH), html, from })
    }

    fn compile(&self, field: &'static str, source: &str) -> Result<Template, TemplateError> {
        self.parser.parse(source).map_err(|e| diagnostics::diagnose(field, source, &e))
    }
}

fn run(field: &'static str, source: &str, template: &Template, globals: &Globals) -> Result<String, TemplateError> {
    template.render(globals).map_err(|e| diagnostics::diagnose(field, source, &e))
}

/// Liquid tags on lines of their own leave blank lines behind; they mean nothing in HTML.
fn drop_blank_lines(html: &str) -> String {
    html.lines().filter(|line| !line.trim().is_empty()).collect::<Vec<_>>().join("\n")
}

/// A representative value for every documented variable; [`Renderer::validate`] renders against it.
pub fn sample_vars() -> Json {
    json!({
        "user": {
            "email": "jane.doe@example.com",
            "email_verified": false,
            "name": "Jane Doe",
            "nickname": "jane.doe",
            "given_name": "Jane",
            "family_name": "Doe",
            "picture": "https://example.com/avatar/jane.png",
            "user_id": "auth0|0123456789abcdef01234567",
            "user_metadata": { "lang": "en" },
            "app_metadata": {},
            "source_ip": "203.0.113.7"
        },
        "application": {
            "name": "Example App",
            "clientID": "AbCdEfGhIjKlMnOpQrStUvWxYz012345",
            "client_metadata": {}
        },
        "connection": { "name": "Username-Password-Authentication" },
        "tenant": "example",
        "friendly_name": "Example",
        "support_email": "support@example.com",
        "support_url": "https://example.com/support",
        "request_language": "en-US,en;q=0.9",
        "url": "https://example.com/u/ticket?t=sample-ticket#",
        "new_email": "jane.new@example.com"
    })
}

/// The embedded default of `name` as `(subject, html, text)`, complete (frame and snippets in place):
/// what an API shows an admin, and what [`Renderer::new`] parses.
pub fn default_source(name: TemplateName) -> (&'static str, &'static str, &'static str) {
    static ASSEMBLED: OnceLock<Vec<(String, String)>> = OnceLock::new();
    let assembled = ASSEMBLED.get_or_init(|| {
        TemplateName::ALL
            .iter()
            .map(|&name| {
                let parts = embedded(name);
                (
                    assemble(PAGE_HTML, parts.html, &[GREETING_HTML, BUTTON_HTML]),
                    assemble(PAGE_TEXT, parts.text, &[GREETING_TEXT, BUTTON_TEXT]),
                )
            })
            .collect()
    });
    let (html, text) = &assembled[name.index()];
    (embedded(name).subject, html, text)
}

const CONTENT: &str = "<!-- roster:content -->";
const GREETING: &str = "<!-- roster:greeting -->";
const BUTTON: &str = "<!-- roster:button -->";

const PAGE_HTML: &str = include_str!("../templates/_layout/page.html.liquid");
const PAGE_TEXT: &str = include_str!("../templates/_layout/page.txt.liquid");
const GREETING_HTML: &str = include_str!("../templates/_layout/greeting.html.liquid");
const GREETING_TEXT: &str = include_str!("../templates/_layout/greeting.txt.liquid");
const BUTTON_HTML: &str = include_str!("../templates/_layout/button.html.liquid");
const BUTTON_TEXT: &str = include_str!("../templates/_layout/button.txt.liquid");

/// Puts the snippets (`[greeting, button]`) into `body` at their markers, then `body` into `page`.
fn assemble(page: &str, body: &str, [greeting, button]: &[&str; 2]) -> String {
    let body = body.replace(GREETING, greeting.trim_end()).replace(BUTTON, button.trim_end());
    page.replace(CONTENT, body.trim_end())
}

struct Embedded {
    subject: &'static str,
    html: &'static str,
    text: &'static str,
}

macro_rules! embedded {
    ($dir:literal) => {
        Embedded {
            subject: include_str!(concat!("../templates/", $dir, "/subject.liquid")),
            html: include_str!(concat!("../templates/", $dir, "/body.html.liquid")),
            text: include_str!(concat!("../templates/", $dir, "/body.txt.liquid")),
        }
    };
}

fn embedded(name: TemplateName) -> Embedded {
    match name {
        TemplateName::VerifyEmail => embedded!("verify_email"),
        // Auth0 kept `change_password` as the old name of the reset link email: same content.
        TemplateName::ResetEmail | TemplateName::ChangePassword => embedded!("reset_email"),
        TemplateName::WelcomeEmail => embedded!("welcome_email"),
        TemplateName::BlockedAccount => embedded!("blocked_account"),
        TemplateName::PasswordReset => embedded!("password_reset"),
        TemplateName::ChangeEmailVerify => embedded!("change_email_verify"),
        TemplateName::ChangeEmailNotice => embedded!("change_email_notice"),
        TemplateName::DuplicateSignup => embedded!("duplicate_signup"),
        TemplateName::AccountDeleted => embedded!("account_deleted"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn renderer() -> &'static Renderer {
        static RENDERER: OnceLock<Renderer> = OnceLock::new();
        RENDERER.get_or_init(Renderer::new)
    }

    /// The sample set with a fixed ticket URL, in `lang`.
    fn full_vars(lang: &str) -> Json {
        let mut vars = sample_vars();
        vars["user"]["user_metadata"]["lang"] = json!(lang);
        vars["url"] = json!("https://id.example.com/u/ticket?t=T1cK3t&lang=x#");
        vars
    }

    fn with_name(name: &str) -> Json {
        let mut vars = full_vars("en");
        vars["user"]["name"] = json!(name);
        vars
    }

    fn custom(body: &str) -> CustomTemplate {
        CustomTemplate { body: body.to_owned(), subject: "Hi {{ user.name }}".to_owned(), from: String::new() }
    }

    fn document(rendered: &Rendered) -> String {
        format!(
            "subject: {}\nfrom: {:?}\n\n--- html ---\n{}\n\n--- text ---\n{}\n",
            rendered.subject, rendered.from, rendered.html, rendered.text
        )
    }

    fn assert_complete(name: TemplateName, rendered: &Rendered) {
        assert!(!rendered.subject.is_empty(), "{name}: empty subject");
        for (part, content) in [("subject", &rendered.subject), ("html", &rendered.html), ("text", &rendered.text)] {
            for leftover in ["{{", "}}", "{%", "%}", "roster:"] {
                assert!(!content.contains(leftover), "{name}: {leftover} left in {part}:\n{content}");
            }
        }
        assert!(rendered.html.starts_with("<!DOCTYPE html>"), "{name}: not a document");
        assert!(!rendered.text.is_empty(), "{name}: empty text");
        assert_eq!(rendered.from, None, "{name}: defaults have no from");
    }

    #[test]
    fn template_names_round_trip() {
        for name in TemplateName::ALL {
            assert_eq!(TemplateName::parse(name.as_str()), Some(name));
            assert_eq!(serde_json::to_value(name).expect("serializes"), json!(name.as_str()));
            assert_eq!(name.to_string(), name.as_str());
            assert_eq!(TemplateName::ALL[name.index()], name);
        }
        assert_eq!(TemplateName::parse("Verify_Email"), None);
        assert_eq!(TemplateName::parse("enrollment_email"), None);
    }

    #[test]
    fn embedded_defaults_parse_and_are_complete_templates() {
        let renderer = Renderer::new();
        for name in TemplateName::ALL {
            let (subject, html, text) = default_source(name);
            for source in [subject, html, text] {
                assert!(!source.contains("roster:"), "{name}: marker left in the assembled source");
            }
            assert!(html.contains("<meta charset=\"utf-8\">") && html.contains("<html lang="), "{name}");
            // What an API shows is usable as a custom template as it stands.
            let template = CustomTemplate { body: html.to_owned(), subject: subject.to_owned(), from: String::new() };
            assert_eq!(renderer.validate(&template), Ok(()), "{name}");
        }
    }

    #[test]
    fn renderer_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Renderer>();
    }

    #[test]
    fn every_default_renders_with_only_an_email() {
        for lang in ["en", "fr"] {
            let vars = json!({"user": {"email": "a@example.com"}, "request_language": lang});
            for name in TemplateName::ALL {
                let rendered = renderer().render(name, None, &vars).unwrap_or_else(|e| panic!("{name} in {lang}: {e}"));
                assert_complete(name, &rendered);
                assert!(rendered.html.contains(&format!("<html lang=\"{lang}\">")), "{name}: {lang}");
            }
        }
    }

    #[test]
    fn every_default_renders_with_all_variables() {
        for lang in ["en", "fr"] {
            let vars = full_vars(lang);
            for name in TemplateName::ALL {
                let rendered = renderer().render(name, None, &vars).unwrap_or_else(|e| panic!("{name} in {lang}: {e}"));
                assert_complete(name, &rendered);
                assert!(rendered.html.contains("support@example.com"), "{name}: support address");
                assert!(rendered.text.lines().all(|line| line.chars().count() <= TEXT_WIDTH || !line.contains(' ')));
            }
        }
    }

    #[test]
    fn every_default_renders_with_no_variables_at_all() {
        for name in TemplateName::ALL {
            let rendered = renderer().render(name, None, &json!({})).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_complete(name, &rendered);
        }
    }

    #[test]
    fn links_get_a_button_and_a_raw_link_and_a_line_of_their_own() {
        let vars = full_vars("en");
        let url = "https://id.example.com/u/ticket?t=T1cK3t&lang=x#";
        for name in [
            TemplateName::VerifyEmail,
            TemplateName::ResetEmail,
            TemplateName::ChangePassword,
            TemplateName::BlockedAccount,
            TemplateName::ChangeEmailVerify,
            TemplateName::ChangeEmailNotice,
            TemplateName::DuplicateSignup,
        ] {
            let rendered = renderer().render(name, None, &vars).expect("renders");
            let href = format!("<a href=\"{}\"", escape_for_test(url));
            assert_eq!(rendered.html.matches(&href).count(), 2, "{name}: button and raw link");
            assert!(rendered.html.contains("bgcolor=\"#2563eb\""), "{name}: bulletproof button");
            assert!(rendered.text.lines().any(|line| line == url), "{name}: link on its own line:\n{}", rendered.text);
        }
        let without_url = json!({"user": {"email": "a@example.com"}});
        let rendered = renderer().render(TemplateName::VerifyEmail, None, &without_url).expect("renders");
        assert!(!rendered.html.contains("<a href=\"\""), "no empty button");
    }

    fn escape_for_test(s: &str) -> String {
        vars::escape_html(s)
    }

    #[test]
    fn change_password_is_reset_email() {
        let vars = full_vars("fr");
        let reset = renderer().render(TemplateName::ResetEmail, None, &vars).expect("renders");
        let change = renderer().render(TemplateName::ChangePassword, None, &vars).expect("renders");
        assert_eq!(reset, change);
    }

    #[test]
    fn unknown_languages_fall_back_to_english() {
        let vars = json!({"user": {"email": "a@example.com", "user_metadata": {"locale": "de_DE"}}});
        let german = renderer().render(TemplateName::VerifyEmail, None, &vars).expect("renders");
        let english =
            renderer().render(TemplateName::VerifyEmail, None, &json!({"user": {"email": "a@example.com"}})).expect("renders");
        assert_eq!(german.subject, "Verify your email address");
        assert_eq!(german.text, english.text);
        assert!(german.html.contains("<html lang=\"en\">"));
    }

    #[test]
    fn language_sources_in_order() {
        let subject = |vars: Json| renderer().render(TemplateName::ResetEmail, None, &vars).expect("renders").subject;
        assert_eq!(
            subject(json!({"user": {"user_metadata": {"lang": "fr-FR"}}, "request_language": "en"})),
            "Réinitialisez votre mot de passe"
        );
        assert_eq!(subject(json!({"user": {"user_metadata": {"locale": "fr_CA"}}})), "Réinitialisez votre mot de passe");
        assert_eq!(subject(json!({"request_language": "fr-FR,fr;q=0.9"})), "Réinitialisez votre mot de passe");
        assert_eq!(subject(json!({"lang": "en", "request_language": "fr"})), "Reset your password");
    }

    #[test]
    fn greeting_uses_the_name_when_there_is_one() {
        let named = renderer().render(TemplateName::WelcomeEmail, None, &with_name("Jane")).expect("renders");
        assert!(named.text.starts_with("Hello Jane,"), "{}", named.text);
        let anonymous = renderer().render(TemplateName::WelcomeEmail, None, &json!({"user": {"name": ""}})).expect("renders");
        assert!(anonymous.text.starts_with("Hello,"), "{}", anonymous.text);
        assert!(anonymous.html.contains(">Hello,</p>"));
    }

    #[test]
    fn default_html_uses_no_external_resources() {
        for name in TemplateName::ALL {
            let (_, html, _) = default_source(name);
            for forbidden in ["<img", "<link", "<script", "<style", "url(", "@import", "src="] {
                assert!(!html.contains(forbidden), "{name}: {forbidden}");
            }
        }
    }

    #[test]
    fn snapshot_verify_email_en() {
        let rendered = renderer().render(TemplateName::VerifyEmail, None, &full_vars("en")).expect("renders");
        insta::assert_snapshot!(document(&rendered));
    }

    #[test]
    fn snapshot_verify_email_fr() {
        let rendered = renderer().render(TemplateName::VerifyEmail, None, &full_vars("fr")).expect("renders");
        insta::assert_snapshot!(document(&rendered));
    }

    #[test]
    fn snapshot_reset_email_en() {
        let rendered = renderer().render(TemplateName::ResetEmail, None, &full_vars("en")).expect("renders");
        insta::assert_snapshot!(document(&rendered));
    }

    #[test]
    fn snapshot_reset_email_fr() {
        let rendered = renderer().render(TemplateName::ResetEmail, None, &full_vars("fr")).expect("renders");
        insta::assert_snapshot!(document(&rendered));
    }

    // --- Injection: values are data, never template source, and never markup or headers. ---

    #[test]
    fn liquid_in_a_value_renders_literally() {
        for payload in ["{{ 7*7 }}", "{% include 'x' %}", "{{ user.app_metadata }}"] {
            let vars = with_name(payload);
            let escaped = vars::escape_html(payload);
            for name in [TemplateName::VerifyEmail, TemplateName::PasswordReset] {
                let rendered = renderer().render(name, None, &vars).expect("renders");
                assert!(rendered.html.contains(&format!("Hello {escaped},")), "{name} html: {payload}");
                assert!(rendered.text.contains(&format!("Hello {payload},")), "{name} text: {payload}");
                assert!(!rendered.html.contains("49") && !rendered.text.contains("49"));
            }
            let template = CustomTemplate {
                body: "<p>{{ user.name }}</p>".into(),
                subject: "[{{ user.name }}]".into(),
                from: "{{ user.name }}".into(),
            };
            let rendered = renderer().render(TemplateName::VerifyEmail, Some(&template), &vars).expect("renders");
            assert_eq!(rendered.subject, format!("[{payload}]"));
            assert_eq!(rendered.from.as_deref(), Some(payload));
            assert_eq!(rendered.html, format!("<p>{escaped}</p>"));
            assert_eq!(rendered.text, payload);
        }
    }

    #[test]
    fn markup_in_a_value_is_escaped_in_html_and_raw_in_text() {
        let vars = with_name("<script>alert(1)</script>");
        for name in TemplateName::ALL {
            let rendered = renderer().render(name, None, &vars).expect("renders");
            assert!(!rendered.html.contains("<script>"), "{name}");
            assert!(rendered.html.contains("Hello &lt;script&gt;alert(1)&lt;/script&gt;,"), "{name}");
            assert!(rendered.text.contains("Hello <script>alert(1)</script>,"), "{name}");
        }
        let rendered =
            renderer().render(TemplateName::VerifyEmail, Some(&custom("<b>{{ user.name }}</b>")), &vars).expect("renders");
        assert_eq!(rendered.html, "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>");
        assert_eq!(rendered.text, "<script>alert(1)</script>");
        assert_eq!(rendered.subject, "Hi <script>alert(1)</script>");
    }

    #[test]
    fn attribute_breaking_values_are_escaped() {
        let mut vars = with_name("x\" onmouseover=\"alert(1)");
        vars["url"] = json!("https://x.test/?a=1&b=\"><script>");
        let rendered = renderer().render(TemplateName::ResetEmail, None, &vars).expect("renders");
        assert!(!rendered.html.contains("\" onmouseover"));
        assert!(!rendered.html.contains("\"><script>"));
        assert!(rendered.html.contains("href=\"https://x.test/?a=1&amp;b=&quot;&gt;&lt;script&gt;\""));
    }

    #[test]
    fn values_in_nested_objects_and_arrays_are_escaped_too() {
        let mut vars = full_vars("en");
        vars["user"]["user_metadata"]["tags"] = json!(["<i>", {"deep": "<u>"}]);
        let template = custom("{{ user.user_metadata.tags[0] }}{{ user.user_metadata.tags[1].deep }}");
        let rendered = renderer().render(TemplateName::WelcomeEmail, Some(&template), &vars).expect("renders");
        assert_eq!(rendered.html, "&lt;i&gt;&lt;u&gt;");
    }

    #[test]
    fn line_breaks_in_values_never_reach_the_headers() {
        let vars = with_name("x\r\nBcc: x@evil");
        let template = CustomTemplate {
            body: "<p>Hi</p>".into(),
            subject: "Hello {{ user.name }}".into(),
            from: "{{ user.name }} <support@example.com>".into(),
        };
        let rendered = renderer().render(TemplateName::WelcomeEmail, Some(&template), &vars).expect("renders");
        assert_eq!(rendered.subject, "Hello x Bcc: x@evil");
        assert_eq!(rendered.from.as_deref(), Some("x Bcc: x@evil <support@example.com>"));
        for name in TemplateName::ALL {
            let mut vars = full_vars("en");
            vars["friendly_name"] = json!("Acme\r\nBcc: x@evil\n");
            let subject = renderer().render(name, None, &vars).expect("renders").subject;
            assert!(!subject.contains(['\r', '\n']), "{name}: {subject:?}");
        }
    }

    // --- Custom templates ---

    #[test]
    fn custom_from_is_rendered() {
        let template = CustomTemplate {
            body: "<p>Welcome</p>".into(),
            subject: "Welcome to {{ friendly_name }}".into(),
            from: "{{ friendly_name }} <support@example.com>".into(),
        };
        let rendered = renderer().render(TemplateName::WelcomeEmail, Some(&template), &full_vars("en")).expect("renders");
        assert_eq!(rendered.from.as_deref(), Some("Example <support@example.com>"));
        assert_eq!(rendered.subject, "Welcome to Example");
    }

    #[test]
    fn custom_without_from_has_none() {
        let mut template = custom("<p>x</p>");
        let rendered = renderer().render(TemplateName::WelcomeEmail, Some(&template), &full_vars("en")).expect("renders");
        assert_eq!(rendered.from, None);
        template.from = "{{ nothing }}".into();
        let rendered = renderer().render(TemplateName::WelcomeEmail, Some(&template), &full_vars("en")).expect("renders");
        assert_eq!(rendered.from, None);
    }

    #[test]
    fn custom_text_part_comes_from_the_html() {
        let template = custom(
            "<html><head><style>p{}</style></head><body><h1>Verify</h1><p>Hello {{ user.given_name }},</p>\
             <p><a href=\"{{ url }}\">Verify</a></p></body></html>",
        );
        let rendered = renderer().render(TemplateName::VerifyEmail, Some(&template), &full_vars("en")).expect("renders");
        assert_eq!(rendered.text, "Verify\n\nHello Jane,\n\nVerify (https://id.example.com/u/ticket?t=T1cK3t&lang=x#)");
    }

    #[test]
    fn custom_templates_see_metadata_and_lang() {
        let template =
            custom("{{ lang }}|{{ user.user_metadata.lang }}|{{ user.user_metadata.plan }}|{{ application.client_metadata.x }}");
        let rendered = renderer().render(TemplateName::WelcomeEmail, Some(&template), &full_vars("fr")).expect("renders");
        assert_eq!(rendered.html, "fr|fr||");
    }

    #[test]
    fn custom_render_errors_name_the_field() {
        let mut template = custom("<p>ok</p>");
        template.subject = "{{ user.name | nope }}".into();
        let error = renderer().render(TemplateName::WelcomeEmail, Some(&template), &full_vars("en")).expect_err("bad filter");
        assert_eq!(error.field, "subject");
        assert_eq!(error.line, Some(1));
    }

    // --- validate ---

    #[test]
    fn validate_reports_an_unclosed_block_at_its_line() {
        let template = custom("<p>\nHello\n{% if user.name != blank %}{{ user.name }}\n</p>\n");
        let error = renderer().validate(&template).expect_err("unclosed if");
        assert_eq!(error.field, "body");
        assert_eq!(error.line, Some(3));
        assert_eq!(error.to_string(), "body: line 3: Unclosed block. {% endif %} tag expected.");
    }

    #[test]
    fn validate_rejects_an_unknown_filter() {
        let template = custom("<p>\n{{ user.name | shout }}</p>");
        let error = renderer().validate(&template).expect_err("unknown filter");
        assert_eq!(
            error,
            TemplateError { field: "body", line: Some(2), message: "Unknown filter (requested filter=shout)".into() }
        );
        assert_eq!(error.to_string(), "body: line 2: Unknown filter (requested filter=shout)");
    }

    #[test]
    fn validate_rejects_a_missing_partial() {
        let error = renderer().validate(&custom("{% include 'header' %}")).expect_err("no partials");
        assert_eq!(error.field, "body");
        assert_eq!(error.line, Some(1));
        assert!(error.message.starts_with("Partial does not exist"), "{}", error.message);
    }

    #[test]
    fn validate_checks_subject_and_from() {
        let mut template = custom("<p>ok</p>");
        template.subject = "{{ user.name ".into();
        assert_eq!(renderer().validate(&template).expect_err("subject").field, "subject");
        template.subject = "ok".into();
        template.from = "{% for %}".into();
        let error = renderer().validate(&template).expect_err("from");
        assert_eq!((error.field, error.line), ("from", Some(1)));
        assert_eq!(error.to_string(), "from: line 1: Identifier expected.");
    }

    #[test]
    fn validate_accepts_a_good_template() {
        let template = CustomTemplate {
            body: "<html><body>{% if user.given_name != blank %}<p>Hi {{ user.given_name | capitalize }},</p>{% endif %}\
                   {% for pair in user.user_metadata %}{{ pair[0] }}{% endfor %}<a href=\"{{ url }}\">Go</a></body></html>"
                .into(),
            subject: "Welcome to {{ friendly_name | default: tenant }}".into(),
            from: "{{ friendly_name }} <support@example.com>".into(),
        };
        assert_eq!(renderer().validate(&template), Ok(()));
    }

    #[test]
    fn error_messages_are_one_line_without_source_quotes() {
        let error = renderer().validate(&custom("a\nb\n{% endif %}\n")).expect_err("stray endif");
        assert_eq!(error.line, Some(3));
        assert!(!error.message.contains('\n'));
        assert!(!error.message.contains("available"), "{}", error.message);
        assert!(!error.message.contains('|'), "{}", error.message);
    }
}

//! Where rendered mail goes: an SMTP server (lettre, with a connection pool; plain, STARTTLS or
//! implicit TLS; optional authentication) or, when nothing is configured, `.eml` files in a folder.
//!
//! Errors say what happened in words an administrator can act on, without the SMTP password (lettre's
//! errors never contain credentials; the URL is never part of an error).

use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS at all (a local relay or a test sink).
    None,
    /// STARTTLS when the server offers it, plain otherwise.
    Opportunistic,
    /// STARTTLS, refusing to talk (or to send credentials) without it.
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
}

impl TlsMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "opportunistic" => Self::Opportunistic,
            "starttls" | "required" => Self::StartTls,
            "implicit" | "wrapper" => Self::Implicit,
            _ => return None,
        })
    }
}

/// Everything needed to reach an SMTP server.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls: TlsMode,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl SmtpSettings {
    /// `smtp://[user:pass@]host[:port][?tls=none|opportunistic|starttls]` (default port 25, no TLS
    /// unless asked) or `smtps://…` (implicit TLS, default port 465). User and password are
    /// percent-decoded.
    pub fn from_url(text: &str) -> Result<Self, ConfigError> {
        let url = url::Url::parse(text).map_err(|_| ConfigError("the SMTP URL is not a URL".into()))?;
        let (default_port, mut tls) = match url.scheme() {
            "smtp" => (25, TlsMode::None),
            "smtps" => (465, TlsMode::Implicit),
            _ => return Err(ConfigError("the SMTP URL must start with smtp:// or smtps://".into())),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| ConfigError("the SMTP URL has no host".into()))?;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "tls" => tls = TlsMode::parse(&v).ok_or_else(|| ConfigError(format!("unknown tls mode '{v}'")))?,
                other => return Err(ConfigError(format!("unknown SMTP URL parameter '{other}'"))),
            }
        }
        let decode = |s: &str| percent_decode(s).ok_or_else(|| ConfigError("bad percent-encoding in the SMTP URL".into()));
        let user = (!url.username().is_empty()).then(|| decode(url.username())).transpose()?;
        let password = url.password().map(decode).transpose()?;
        Ok(Self { host: host.trim_matches(['[', ']']).to_owned(), port: url.port().unwrap_or(default_port), user, password, tls })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A failed delivery: `permanent` when trying again cannot help (the server refused the recipient or
/// the credentials), transient otherwise (connection refused, timeout, 4xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

/// A configured destination for mail.
pub enum Transport {
    Smtp { inner: AsyncSmtpTransport<Tokio1Executor>, describe: String },
    Files(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Transport {
    pub fn smtp(s: &SmtpSettings, timeout: Duration) -> Result<Self, ConfigError> {
        let tls_params =
            || TlsParameters::new(s.host.clone()).map_err(|_| ConfigError(format!("cannot set up TLS for {}", s.host)));
        let tls = match s.tls {
            TlsMode::None => Tls::None,
            TlsMode::Opportunistic => Tls::Opportunistic(tls_params()?),
            TlsMode::StartTls => Tls::Required(tls_params()?),
            TlsMode::Implicit => Tls::Wrapper(tls_params()?),
        };
        let mut b =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone()).port(s.port).tls(tls).timeout(Some(timeout));
        if let Some(user) = &s.user {
            b = b.credentials(Credentials::new(user.clone(), s.password.clone().unwrap_or_default()));
        }
        let describe = format!("smtp://{}:{} ({:?})", s.host, s.port, s.tls).to_lowercase();
        Ok(Self::Smtp { inner: b.build(), describe })
    }

    pub fn files(dir: PathBuf) -> Self {
        Self::Files(dir)
    }

    /// For logs: where mail goes (never the credentials).
    pub fn describe(&self) -> String {
        match self {
            Self::Smtp { describe, .. } => describe.clone(),
            Self::Files(dir) => format!("files in {}", dir.display()),
        }
    }

    /// Deliver one message. `id` names the file for the file transport (so a retry overwrites rather
    /// than duplicates). Returns a description of where it went (the file path, or the server).
    pub async fn send(&self, id: &str, msg: &Message) -> Result<String, SendError> {
        match self {
            Self::Smtp { inner, describe } => match inner.send(msg.clone()).await {
                Ok(_) => Ok(describe.clone()),
                Err(e) => Err(SendError { permanent: e.is_permanent(), message: one_line(&e.to_string()) }),
            },
            Self::Files(dir) => {
                let path = dir.join(format!("{id}.eml"));
                let tmp = dir.join(format!(".{id}.eml.tmp"));
                let write = async {
                    tokio::fs::create_dir_all(dir).await?;
                    tokio::fs::write(&tmp, msg.formatted()).await?;
                    tokio::fs::rename(&tmp, &path).await
                };
                write
                    .await
                    .map_err(|e| SendError { permanent: false, message: format!("cannot write the mail file: {}", e.kind()) })?;
                Ok(path.display().to_string())
            }
        }
    }
}

/// Collapse an error to one bounded line (it is stored and shown to administrators).
fn one_line(s: &str) -> String {
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    flat.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        let s = SmtpSettings::from_url("smtp://127.0.0.1:2525").expect("ok");
        assert_eq!((s.host.as_str(), s.port, s.tls, s.user.clone()), ("127.0.0.1", 2525, TlsMode::None, None));
        let s = SmtpSettings::from_url("smtps://me%40x.org:p%3Ass@mail.example.com").expect("ok");
        assert_eq!((s.port, s.tls), (465, TlsMode::Implicit));
        assert_eq!((s.user.as_deref(), s.password.as_deref()), (Some("me@x.org"), Some("p:ss")));
        let s = SmtpSettings::from_url("smtp://mail.example.com:587?tls=starttls").expect("ok");
        assert_eq!(s.tls, TlsMode::StartTls);
        assert!(!format!("{s:?}").contains("p:ss"));
        for bad in ["http://x", "smtp://", "smtp://h?tls=maybe", "smtp://h?x=1", "not a url"] {
            assert!(SmtpSettings::from_url(bad).is_err(), "{bad}");
        }
    }

    /// lettre's pool runs on the Tokio runtime, so a transport is built inside one.
    #[tokio::test]
    async fn debug_hides_the_password() {
        let s = SmtpSettings::from_url("smtp://u:hunter2@h").expect("ok");
        assert!(!format!("{s:?}").contains("hunter2"));
        let t = Transport::smtp(&s, Duration::from_secs(1)).expect("builds");
        assert!(!t.describe().contains("hunter2"));
    }
}

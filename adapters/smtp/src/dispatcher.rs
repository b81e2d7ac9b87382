use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use herald_application::ports::{Delivery, DeliveryError, Dispatcher, DispatcherSetting};
use herald_application::unsubscribe::UnsubscribeKey;
use herald_domain::Method;

use crate::config::{Security, SmtpSettings};
use crate::connections::{Connections, Failure, Stage};
use crate::message::Composer;

/// A kept connection idle for longer is closed rather than reused (lettre's pool default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Delivers messages by email through one smarthost, over kept connections.
///
/// Connections (with their TLS session and authentication) are kept open and reused across
/// messages (`Connections`); one that the server closed is noticed with `NOOP` and
/// replaced. Every connection is kept, however many there are: the notifier sends a whole
/// lease at once, so a cap below it would close the connections beyond it after each lease,
/// and the next lease would open them again, each with its TLS handshake and login. How many
/// are open is bounded by how many messages are sent at once; one idle for longer than
/// `IDLE_TIMEOUT` is closed rather than reused. [`SmtpDispatcher::new`] needs no async
/// runtime.
///
/// Each delivery is bounded by [`SmtpConfig::timeout`](crate::SmtpConfig) (lettre bounds
/// only connecting). A connection in use when the timeout fires, or when the delivery is
/// cancelled, is dropped with the future, so never reused mid-conversation.
///
/// With an `--email-auth-identity` other than the username, connections authenticate with
/// AUTH PLAIN carrying that identity (lettre's PLAIN cannot send one), and need a server
/// offering PLAIN.
pub struct SmtpDispatcher {
    connections: Connections,
    composer: Composer,
    server: String,
    security: Security,
    timeout: Duration,
    /// What [`Dispatcher::settings`] shows: the password only as set.
    shown: Vec<DispatcherSetting>,
}

impl SmtpDispatcher {
    /// A dispatcher with checked `settings` ([`SmtpConfig::validate`](crate::SmtpConfig::validate): an invalid smarthost or
    /// From address never reaches a delivery), linking to `access_url` (the settings page and
    /// the one-click unsubscribe endpoint) and naming `app_name` in the HTML layout.
    pub fn new(
        settings: SmtpSettings,
        access_url: &str,
        app_name: &str,
        unsubscribe_key: UnsubscribeKey,
    ) -> Self {
        let SmtpSettings(settings) = settings;
        let server = if settings.host.contains(':') {
            format!("[{}]:{}", settings.host, settings.port)
        } else {
            format!("{}:{}", settings.host, settings.port)
        };
        let composer = Composer::new(settings.from.clone(), access_url, app_name, unsubscribe_key);
        let security = settings.security;
        let timeout = settings.timeout;
        let shown = vec![
            DispatcherSetting::new("Smarthost", server.clone()),
            DispatcherSetting::new("From", settings.from.to_string()),
            DispatcherSetting::new(
                "Transport security",
                match security {
                    Security::Plain => "none",
                    Security::StartTls => "STARTTLS (required)",
                    Security::Implicit => "TLS",
                },
            ),
            DispatcherSetting::secret(
                "Authentication password",
                settings.credentials.is_some() || settings.plain_identity.is_some(),
            ),
            DispatcherSetting::new("Timeout", format!("{timeout:?}")),
        ];
        Self {
            connections: Connections::new(settings, IDLE_TIMEOUT),
            composer,
            server,
            security,
            timeout,
            shown,
        }
    }
}

impl fmt::Debug for SmtpDispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpDispatcher")
            .field("server", &self.server)
            .field("security", &self.security)
            .field("connections", &self.connections)
            .field("composer", &self.composer)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[async_trait]
impl Dispatcher for SmtpDispatcher {
    fn method(&self) -> Method {
        Method::Smtp
    }

    fn settings(&self) -> Vec<DispatcherSetting> {
        self.shown.clone()
    }

    async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let message = self.composer.compose(delivery)?;
        let Ok(sent) = tokio::time::timeout(self.timeout, self.connections.send(&message)).await
        else {
            return Err(DeliveryError::retryable(format!(
                "timed out: the mail server {} did not complete the delivery within {:?}",
                self.server, self.timeout
            )));
        };
        match sent {
            Ok(response) => {
                tracing::debug!(
                    message_id = %delivery.message_id,
                    server = %self.server,
                    reply = %response.code(),
                    "email accepted by the mail server"
                );
                Ok(())
            }
            Err(failure) => Err(classify(failure, &self.server)),
        }
    }
}

/// What a failed delivery means for the message (DESIGN §6).
///
/// - A 5xx reply to `RCPT TO` is permanent: the server refuses that recipient. Every other
///   reply (4xx anywhere; 5xx to the greeting, EHLO, STARTTLS, AUTH, `MAIL FROM` or `DATA`)
///   is retryable: it says nothing about this recipient, and is about the server or the
///   deployment's configuration (a rotated password, a relay refusing for a while), so
///   retrying loses nothing once that is fixed.
/// - Authentication configured but no PLAIN or LOGIN offered (no PLAIN, when acting as an
///   identity), or a message the server cannot take (non-ASCII without SMTPUTF8 or
///   8BITMIME): permanent.
/// - Connection refused or reset, DNS failure, a TLS handshake failure (untrusted certificate
///   included), a required STARTTLS the server did not offer (a misconfigured server, or an
///   intermediary stripping it), garbled replies and timeouts: retryable.
fn classify(failure: Failure, server: &str) -> DeliveryError {
    let (stage, err) = match failure {
        Failure::Smtp { stage, error } => (stage, error),
        Failure::NoMechanism => {
            return DeliveryError::permanent(format!(
                "the mail server {server} offers neither AUTH PLAIN nor AUTH LOGIN, but a \
                 username (smtp.auth_username) is configured"
            ));
        }
        Failure::NoPlain => {
            return DeliveryError::permanent(format!(
                "the mail server {server} does not offer AUTH PLAIN, which the configured \
                 authorization identity (smtp.auth_identity) requires: AUTH LOGIN cannot carry \
                 an authorization identity, so it is not used to authenticate as the username \
                 instead"
            ));
        }
        Failure::UnexpectedChallenge(reply) => {
            return DeliveryError::permanent(format!(
                "the mail server {server} answered AUTH PLAIN's initial response with {} \
                 instead of accepting or refusing it",
                reply.code()
            ));
        }
        Failure::Unsupported(what) => {
            return DeliveryError::permanent(format!(
                "the mail server {server} cannot take this message: {what}"
            ));
        }
    };
    let detail = root_cause(&err);
    if let Some(code) = err.status() {
        let reason = format!("the mail server {server} answered {code} to {stage}: {detail}");
        return if err.is_permanent() && stage == Stage::Rcpt {
            DeliveryError::permanent(reason)
        } else {
            DeliveryError::retryable(reason)
        };
    }
    if err.is_timeout() {
        return DeliveryError::retryable(format!(
            "timed out talking to the mail server {server}: {detail}"
        ));
    }
    if err.is_tls() || is_tls_failure(&err) {
        return DeliveryError::retryable(format!(
            "TLS with the mail server {server} failed: {detail}"
        ));
    }
    if err.is_client() && detail == "STARTTLS is not supported on this server" {
        return DeliveryError::retryable(format!(
            "the mail server {server} did not offer STARTTLS, which the configuration \
             (smtp.starttls) requires; nothing was sent in plaintext"
        ));
    }
    DeliveryError::retryable(format!(
        "could not talk to the mail server {server} at {stage}: {detail}"
    ))
}

/// Whether a rustls error is behind `err`: a handshake failure surfaces from lettre as an I/O
/// error wrapping it.
fn is_tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(error) = current {
        if error.is::<rustls::Error>() {
            return true;
        }
        let wraps_rustls = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .is_some_and(|inner| inner.is::<rustls::Error>());
        if wraps_rustls {
            return true;
        }
        current = error.source();
    }
    false
}

/// The innermost error, which says what actually happened (refused, reset, bad certificate…).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

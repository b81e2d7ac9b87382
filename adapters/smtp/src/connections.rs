//! The SMTP conversation, over kept connections.
//!
//! Deliveries drive lettre's lower-level [`AsyncSmtpConnection`] command by command rather
//! than through its pooled transport, because what a 5xx reply means depends on the command
//! it answers (DESIGN §6): only a refusal of `RCPT TO` is about the recipient and permanent;
//! a 5xx to the greeting, EHLO, STARTTLS, AUTH, `MAIL FROM` or `DATA` says nothing about this
//! message's recipient, and lettre's transport reports every one of them alike. So each
//! failure carries the [`Stage`] it happened at.
//!
//! Connecting is what lettre's Tokio transport does: implicit TLS or a required STARTTLS
//! with the configured [`TlsParameters`] and connect timeout, then AUTH with PLAIN preferred
//! and LOGIN otherwise, or AUTH PLAIN acting as another identity ([`crate::plain_identity`]).
//!
//! Pooling: every connection is kept for the next deliveries once its send completed and
//! dropped once idle for longer than the idle timeout. One idle for less than
//! [`UNCHECKED_REUSE`] is reused as it is (it was answering a moment ago); one idle longer is
//! checked with `NOOP` first. Should the server have closed an unchecked one meanwhile, its
//! `MAIL FROM` fails without a reply, before anything was sent, and the message goes over a new
//! connection at once (a reply, even a refusal, is the server's answer and stands).
//! Concurrent deliveries that find none idle open their own, so as many stay open as were
//! sent at once (the notifier sends a whole lease at once). A connection is only kept after a
//! completed send, so one left mid-conversation by a timeout or a cancelled delivery is
//! dropped (closed), never reused; one whose send failed is closed with `QUIT`.
//!
//! [`TlsParameters`]: lettre::transport::smtp::client::TlsParameters

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

use crate::config::{PlainIdentity, Settings};
use crate::plain_identity;

/// Where in the conversation a delivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Connecting, the server's greeting and EHLO.
    Greeting,
    StartTls,
    Auth,
    Mail,
    /// `RCPT TO`: the only stage whose refusal is about the recipient.
    Rcpt,
    /// `DATA` and the end of the message's content.
    Data,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Greeting => "the connection's greeting or EHLO",
            Self::StartTls => "STARTTLS",
            Self::Auth => "AUTH",
            Self::Mail => "MAIL FROM",
            Self::Rcpt => "RCPT TO",
            Self::Data => "DATA",
        })
    }
}

/// Why a delivery failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An error connecting or talking to the server (a reply it refused with, a broken
    /// connection, TLS, a timeout) at `stage`.
    Smtp { stage: Stage, error: SmtpError },
    /// Authentication is configured but the server offers neither PLAIN nor LOGIN.
    NoMechanism,
    /// Acting as an identity, but the server does not offer AUTH PLAIN, the only mechanism
    /// with an identity.
    NoPlain,
    /// The server asked for more after PLAIN's initial response (a `334` reply).
    UnexpectedChallenge(Response),
    /// The message needs an extension the server does not offer (SMTPUTF8 for a non-ASCII
    /// address, 8BITMIME for non-ASCII content).
    Unsupported(&'static str),
}

/// How connections authenticate.
pub(crate) enum Login {
    None,
    /// lettre's AUTH with the first of `mechanisms` the server offers.
    Credentials {
        credentials: Credentials,
        mechanisms: Vec<Mechanism>,
    },
    /// AUTH PLAIN acting as another identity.
    Identity(PlainIdentity),
}

/// Connections to one smarthost, kept between deliveries.
pub(crate) struct Connections {
    host: String,
    port: u16,
    hello: ClientId,
    tls: Tls,
    timeout: Duration,
    login: Login,
    idle_timeout: Duration,
    /// The idle connections, each with since when it is idle, the most recently used last.
    /// Never locked across an `await`.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl Connections {
    pub fn new(settings: Settings, idle_timeout: Duration) -> Self {
        let login = match (settings.plain_identity, settings.credentials) {
            (Some(plain), _) => Login::Identity(plain),
            (None, Some(credentials)) => Login::Credentials {
                credentials,
                mechanisms: settings.mechanisms,
            },
            (None, None) => Login::None,
        };
        Self {
            host: settings.host,
            port: settings.port,
            hello: settings.hello,
            tls: settings.tls,
            timeout: settings.timeout,
            login,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `message` over an idle connection when one is still usable, else a new one.
    ///
    /// Not bounded in time beyond connecting: the caller bounds the whole delivery. Dropping
    /// the future drops (closes) the connection in use.
    ///
    /// # Errors
    /// The [`Failure`] of connecting, authenticating or sending.
    pub async fn send(&self, message: &Message) -> Result<Response, Failure> {
        let (mut connection, unchecked) = match self.reusable().await {
            Some(reused) => reused,
            None => (self.connect().await?, false),
        };
        let mut sent = transaction(&mut connection, message).await;
        if unchecked && closed_before_mail(&sent) {
            // Closed by the server while idle: nothing was sent; a new connection.
            connection.abort().await;
            connection = self.connect().await?;
            sent = transaction(&mut connection, message).await;
        }
        match sent {
            Ok(response) => {
                self.put_idle(connection);
                Ok(response)
            }
            // Nothing was sent: the connection is as it was.
            Err(failure @ Failure::Unsupported(_)) => {
                self.put_idle(connection);
                Err(failure)
            }
            Err(failure) => {
                connection.abort().await;
                Err(failure)
            }
        }
    }

    /// The most recently used idle connection: as it is when idle for less than
    /// [`UNCHECKED_REUSE`] (`true`: unchecked), else once it answered `NOOP`. Those idle too
    /// long, or that do not answer, are dropped (closed).
    async fn reusable(&self) -> Option<(AsyncSmtpConnection, bool)> {
        loop {
            let (mut connection, since) = {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                idle.retain(|(_, since)| since.elapsed() < self.idle_timeout);
                idle.pop()?
            };
            if since.elapsed() < UNCHECKED_REUSE {
                return Some((connection, true));
            }
            if connection.test_connected().await {
                return Some((connection, false));
            }
            connection.abort().await;
        }
    }

    /// Keeps `connection` for the next deliveries.
    fn put_idle(&self, connection: AsyncSmtpConnection) {
        if connection.has_broken() {
            return;
        }
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((connection, Instant::now()));
    }

    /// A new connection, protected and authenticated as configured.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        // As lettre's Tokio executor connects its pooled transport.
        let implicit = match &self.tls {
            Tls::Wrapper(parameters) => Some(parameters.clone()),
            _ => None,
        };
        let mut connection = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            implicit,
            None,
        )
        .await
        .map_err(at(Stage::Greeting))?;
        if let Tls::Required(parameters) = &self.tls {
            // Fails (and closes the connection) when STARTTLS is not offered: no plaintext
            // fallback, nothing sent.
            connection
                .starttls(parameters.clone(), &self.hello)
                .await
                .map_err(at(Stage::StartTls))?;
        }
        let authenticated = match &self.login {
            Login::None => Ok(()),
            Login::Credentials {
                credentials,
                mechanisms,
            } => {
                if connection
                    .server_info()
                    .get_auth_mechanism(mechanisms)
                    .is_none()
                {
                    Err(Failure::NoMechanism)
                } else {
                    connection
                        .auth(mechanisms, credentials)
                        .await
                        .map(drop)
                        .map_err(at(Stage::Auth))
                }
            }
            Login::Identity(plain) => plain_identity::authenticate(&mut connection, plain).await,
        };
        match authenticated {
            Ok(()) => Ok(connection),
            Err(failure) => {
                connection.abort().await;
                Err(failure)
            }
        }
    }
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials.
        let login = match &self.login {
            Login::None => "none",
            Login::Credentials { .. } => "credentials",
            Login::Identity(_) => "plain identity",
        };
        f.debug_struct("Connections")
            .field("login", &login)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// One mail transaction on an open connection: `MAIL FROM`, `RCPT TO` for each recipient,
/// `DATA` and the content, as lettre's `AsyncSmtpConnection::send` does, each failure tagged
/// with its stage.
async fn transaction(
    connection: &mut AsyncSmtpConnection,
    message: &Message,
) -> Result<Response, Failure> {
    let envelope = message.envelope();
    let content = message.formatted();
    let server = connection.server_info();
    let mut parameters = Vec::new();
    let non_ascii_address = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|address| !AsRef::<str>::as_ref(address).is_ascii());
    if non_ascii_address {
        if !server.supports_feature(Extension::SmtpUtfEight) {
            return Err(Failure::Unsupported(
                "an address is not ASCII and the server does not offer SMTPUTF8",
            ));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !content.is_ascii() {
        if !server.supports_feature(Extension::EightBitMime) {
            return Err(Failure::Unsupported(
                "the message is not ASCII and the server does not offer 8BITMIME",
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    connection
        .command(Mail::new(envelope.from().cloned(), parameters))
        .await
        .map_err(at(Stage::Mail))?;
    for recipient in envelope.to() {
        connection
            .command(Rcpt::new(recipient.clone(), Vec::new()))
            .await
            .map_err(at(Stage::Rcpt))?;
    }
    connection.command(Data).await.map_err(at(Stage::Data))?;
    connection.message(&content).await.map_err(at(Stage::Data))
}

/// How long a connection may have been idle and still be reused without a `NOOP` first.
pub(crate) const UNCHECKED_REUSE: Duration = Duration::from_secs(2);

/// Whether `sent` failed at `MAIL FROM` without a reply from the server (the connection was
/// closed or reset): nothing of the message reached it.
fn closed_before_mail(sent: &Result<Response, Failure>) -> bool {
    matches!(
        sent,
        Err(Failure::Smtp { stage: Stage::Mail, error }) if error.status().is_none() && !error.is_timeout()
    )
}

/// Tags an error with the stage it happened at.
fn at(stage: Stage) -> impl FnOnce(SmtpError) -> Failure {
    move |error| Failure::Smtp { stage, error }
}

//! Delivery acting as another identity (`--email-auth-identity` other than the username).
//!
//! lettre's AUTH PLAIN always sends an empty authorization identity, so these deliveries drive
//! lettre's lower-level [`AsyncSmtpConnection`] themselves: connect (implicit TLS or a
//! required STARTTLS exactly as the pooled transport does, with the same [`TlsParameters`]
//! and connect timeout), then `AUTH PLAIN` with the initial response
//! base64(`authzid NUL authcid NUL password`) (RFC 4616, RFC 4954), then the message.
//!
//! PLAIN is required: LOGIN has no authorization identity, so authenticating with it would
//! silently act as the username instead. A server that does not offer PLAIN fails with
//! [`Failure::NoPlain`].
//!
//! Pooling: every connection is kept for the next deliveries once its send completed, checked
//! with `NOOP` before reuse and dropped once idle for longer than the pool's idle timeout.
//! Concurrent deliveries that find none idle open their own, so as many stay open as were
//! sent at once (the notifier sends a whole lease at once), as with the pooled transport. A
//! connection is only kept after a completed send, so one left mid-conversation by a timeout
//! or a cancelled delivery is dropped (closed), never reused.
//!
//! [`TlsParameters`]: lettre::transport::smtp::client::TlsParameters

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::Message;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;

use crate::config::{PlainIdentity, Settings};

/// Why a delivery acting as an identity failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Connecting, TLS, a refused AUTH, or the message itself: classified like the pooled
    /// transport's errors.
    Smtp(SmtpError),
    /// The server does not offer AUTH PLAIN, the only mechanism with an identity.
    NoPlain,
    /// The server asked for more after PLAIN's initial response (a `334` reply).
    UnexpectedChallenge(Response),
}

impl From<SmtpError> for Failure {
    fn from(err: SmtpError) -> Self {
        Self::Smtp(err)
    }
}

/// Sends messages authenticated with AUTH PLAIN acting as the configured identity.
pub(crate) struct IdentitySender {
    host: String,
    port: u16,
    hello: ClientId,
    tls: Tls,
    timeout: Duration,
    plain: PlainIdentity,
    idle_timeout: Duration,
    /// The idle connections, each with since when it is idle, the most recently used last.
    /// Never locked across an `await`.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl IdentitySender {
    pub fn new(settings: &Settings, plain: PlainIdentity, idle_timeout: Duration) -> Self {
        Self {
            host: settings.host.clone(),
            port: settings.port,
            hello: settings.hello.clone(),
            tls: settings.tls.clone(),
            timeout: settings.timeout,
            plain,
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
        let reusable = match self.take_idle() {
            Some(mut idle) => idle.test_connected().await.then_some(idle),
            None => None,
        };
        let mut connection = match reusable {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        let response = connection
            .send(message.envelope(), &message.formatted())
            .await?;
        self.put_idle(connection);
        Ok(response)
    }

    /// The most recently used idle connection; those idle too long are dropped (closed).
    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|(_, since)| since.elapsed() < self.idle_timeout);
        idle.pop().map(|(connection, _)| connection)
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

    /// A new connection, protected as configured and authenticated as the identity.
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
        .await?;
        if let Tls::Required(parameters) = &self.tls {
            // Fails (and closes the connection) when STARTTLS is not offered: no plaintext
            // fallback, nothing sent.
            connection.starttls(parameters.clone(), &self.hello).await?;
        }
        if !connection
            .server_info()
            .supports_auth_mechanism(Mechanism::Plain)
        {
            connection.abort().await;
            return Err(Failure::NoPlain);
        }
        let reply = match connection.command(AuthPlain(&self.plain)).await {
            Ok(reply) => reply,
            Err(err) => {
                connection.abort().await;
                return Err(err.into());
            }
        };
        if !reply.has_code(235) {
            // 334: the server ignored the initial response. RFC 4954 servers take it.
            connection.abort().await;
            return Err(Failure::UnexpectedChallenge(reply));
        }
        Ok(connection)
    }
}

impl fmt::Debug for IdentitySender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentitySender")
            .field("plain", &self.plain)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// `AUTH PLAIN <initial response>`: base64(`authzid NUL authcid NUL password`), CRLF-ended.
/// Only `Display` (what lettre writes to the server); no `Debug`, which could log it.
struct AuthPlain<'a>(&'a PlainIdentity);

impl fmt::Display for AuthPlain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let PlainIdentity {
            identity,
            username,
            password,
        } = self.0;
        let message = format!("{identity}\0{username}\0{password}");
        write!(f, "AUTH PLAIN {}\r\n", BASE64.encode(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_plain_carries_the_identity_then_the_username_and_password() {
        let plain = PlainIdentity {
            identity: "someone-else".into(),
            username: "herald".into(),
            password: "hunter2".into(),
        };
        let command = AuthPlain(&plain).to_string();
        let encoded = command
            .strip_prefix("AUTH PLAIN ")
            .and_then(|rest| rest.strip_suffix("\r\n"))
            .unwrap_or_else(|| panic!("{command:?}"));
        assert_eq!(
            BASE64.decode(encoded).ok().as_deref(),
            Some(&b"someone-else\0herald\0hunter2"[..])
        );
    }
}

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use herald_application::ports::{Delivery, DeliveryError, Dispatcher};
use herald_application::unsubscribe::UnsubscribeKey;
use herald_domain::Method;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{Security, SmtpSettings};
use crate::message::Composer;
use crate::plain_identity::{Failure, IdentitySender};

/// Idle pooled connections are closed after this long (lettre's default).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Every connection is kept for reuse, however many there are (lettre's default keeps 10): the
/// notifier sends a whole lease at once (`--notifications-lease-count`, 20 by default), so a
/// cap below it closed the connections beyond it after each lease, and the next lease opened
/// them again, each with its TLS handshake and login. How many are open is bounded by how
/// many messages are sent at once; an idle one closes after [`POOL_IDLE_TIMEOUT`].
const POOL_MAX_IDLE: u32 = u32::MAX;

/// Delivers messages by email through one smarthost, over pooled connections.
///
/// Connections (with their TLS session and authentication) are kept open and reused across
/// messages; one that the server closed is noticed with `NOOP` and replaced. The pool is
/// created on the first delivery, so [`SmtpDispatcher::new`] needs no async runtime; use the
/// dispatcher from one Tokio runtime.
///
/// Each delivery is bounded by [`SmtpConfig::timeout`] (lettre bounds only connecting). A
/// delivery that times out or is cancelled mid-conversation may leave its connection in the
/// middle of a command, and lettre would put it back in the pool; so the whole pool is then
/// replaced, and such a connection is never reused.
///
/// With an `--email-auth-identity` other than the username, deliveries authenticate with
/// AUTH PLAIN carrying that identity over lettre's lower-level connection instead (lettre's
/// PLAIN cannot send one), with the same TLS rules, timeouts and error classification; they
/// reuse one idle connection rather than a pool, and need a server offering PLAIN.
pub struct SmtpDispatcher {
    builder: AsyncSmtpTransportBuilder,
    transport: Mutex<Option<Arc<Transport>>>,
    /// Set when acting as an identity other than the username: used instead of `transport`.
    identity: Option<IdentitySender>,
    composer: Composer,
    server: String,
    security: Security,
    timeout: Duration,
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
        let SmtpSettings(mut settings) = settings;
        let identity = settings
            .plain_identity
            .take()
            .map(|plain| IdentitySender::new(&settings, plain, POOL_IDLE_TIMEOUT));
        let server = if settings.host.contains(':') {
            format!("[{}]:{}", settings.host, settings.port)
        } else {
            format!("{}:{}", settings.host, settings.port)
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .hello_name(settings.hello)
            .tls(settings.tls)
            .timeout(Some(settings.timeout))
            .authentication(settings.mechanisms)
            .pool_config(
                PoolConfig::new()
                    .max_size(POOL_MAX_IDLE)
                    .idle_timeout(POOL_IDLE_TIMEOUT),
            );
        if let Some(credentials) = settings.credentials {
            builder = builder.credentials(credentials);
        }
        Self {
            builder,
            transport: Mutex::new(None),
            identity,
            composer: Composer::new(settings.from, access_url, app_name, unsubscribe_key),
            server,
            security: settings.security,
            timeout: settings.timeout,
        }
    }

    /// The current pool, created on first use.
    fn transport(&self) -> Arc<Transport> {
        let mut slot = self
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            slot.get_or_insert_with(|| Arc::new(Transport(Some(self.builder.clone().build())))),
        )
    }

    /// Drops `transport` as the current pool (if it still is): the next delivery starts a new
    /// one, and the old one closes once its in-flight deliveries end.
    fn discard(&self, transport: &Arc<Transport>) {
        let mut slot = self
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, transport))
        {
            *slot = None;
        }
    }
}

impl fmt::Debug for SmtpDispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the builder: it holds the credentials.
        f.debug_struct("SmtpDispatcher")
            .field("server", &self.server)
            .field("security", &self.security)
            .field("identity", &self.identity)
            .field("composer", &self.composer)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Dispatcher for SmtpDispatcher {
    fn method(&self) -> Method {
        Method::Smtp
    }

    async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let message = self.composer.compose(delivery)?;
        if let Some(identity) = &self.identity {
            return self
                .dispatch_as_identity(identity, delivery, &message)
                .await;
        }
        let transport = self.transport();
        let mut in_flight = InFlight {
            dispatcher: self,
            transport: &transport,
            finished: false,
        };
        let sent = tokio::time::timeout(self.timeout, transport.get().send(message)).await;
        in_flight.finished = sent.is_ok();
        drop(in_flight);
        let Ok(sent) = sent else {
            return Err(self.timed_out());
        };
        match sent {
            Ok(response) => {
                self.accepted(delivery, &response);
                Ok(())
            }
            Err(err) => Err(classify(&err, &self.server)),
        }
    }
}

impl SmtpDispatcher {
    /// The failure of a delivery that did not finish within the timeout.
    fn timed_out(&self) -> DeliveryError {
        DeliveryError::retryable(format!(
            "timed out: the mail server {} did not complete the delivery within {:?}",
            self.server, self.timeout
        ))
    }

    fn accepted(
        &self,
        delivery: &Delivery,
        response: &lettre::transport::smtp::response::Response,
    ) {
        tracing::debug!(
            message_id = %delivery.message_id,
            server = %self.server,
            reply = %response.code(),
            "email accepted by the mail server"
        );
    }

    /// A delivery with AUTH PLAIN acting as the configured identity, bounded by the timeout
    /// like a pooled one. A connection in use when the timeout fires is dropped with the
    /// future, so never reused.
    async fn dispatch_as_identity(
        &self,
        identity: &IdentitySender,
        delivery: &Delivery,
        message: &lettre::Message,
    ) -> Result<(), DeliveryError> {
        let Ok(sent) = tokio::time::timeout(self.timeout, identity.send(message)).await else {
            return Err(self.timed_out());
        };
        match sent {
            Ok(response) => {
                self.accepted(delivery, &response);
                Ok(())
            }
            Err(Failure::Smtp(err)) => Err(classify(&err, &self.server)),
            Err(Failure::NoPlain) => Err(DeliveryError::permanent(format!(
                "the mail server {server} does not offer AUTH PLAIN, which \
                 the configured authorization identity (smtp.auth_identity) requires: AUTH LOGIN \
                 cannot carry an authorization identity, so it is not used to authenticate as \
                 the username instead",
                server = self.server
            ))),
            Err(Failure::UnexpectedChallenge(reply)) => Err(DeliveryError::permanent(format!(
                "the mail server {} answered AUTH PLAIN's initial response with {} instead of \
                 accepting or refusing it",
                self.server,
                reply.code()
            ))),
        }
    }
}

/// Discards the pool unless the send it guards finished (it timed out, or the caller dropped
/// the delivery future).
struct InFlight<'a> {
    dispatcher: &'a SmtpDispatcher,
    transport: &'a Arc<Transport>,
    finished: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.dispatcher.discard(self.transport);
        }
    }
}

/// The transport, dropped inside a Tokio runtime: lettre's pool spawns its clean-up task when
/// dropped, which panics outside one (a dispatcher dropped after its runtime ended).
struct Transport(Option<AsyncSmtpTransport<Tokio1Executor>>);

impl Transport {
    fn get(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        match &self.0 {
            Some(transport) => transport,
            // Only `drop` takes it out.
            None => unreachable!("the SMTP transport is only taken when dropped"),
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        let Some(transport) = self.0.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(transport);
            return;
        }
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(runtime) => {
                let _entered = runtime.enter();
                // The clean-up task is queued, then cancelled with the runtime: the pooled
                // connections close without a QUIT.
                drop(transport);
            }
            // No runtime can be made: leak the pool rather than panic in a destructor.
            Err(_) => std::mem::forget(transport),
        }
    }
}

/// What a failed send means for the message (DESIGN §6).
///
/// - A 5xx reply is permanent: a refused recipient (RCPT), a refused message (DATA: the same
///   content will be refused again), bad credentials (AUTH 535; fix the configuration, then
///   re-send). A 4xx reply is retryable (greylisting, 451 at DATA, 454 temporary AUTH failure).
/// - Authentication configured but no PLAIN or LOGIN offered (no PLAIN, when acting as an
///   identity: see `dispatch_as_identity`), or an address the server cannot take (non-ASCII
///   without SMTPUTF8): permanent.
/// - Connection refused or reset, DNS failure, a TLS handshake failure (untrusted certificate
///   included), a required STARTTLS the server did not offer (a misconfigured server, or an
///   intermediary stripping it), garbled replies and timeouts: retryable.
fn classify(err: &lettre::transport::smtp::Error, server: &str) -> DeliveryError {
    let detail = root_cause(err);
    if let Some(code) = err.status() {
        let reason = format!("the mail server {server} answered {code}: {detail}");
        // A refused authentication (530 required, 534 too weak, 535 credentials invalid, 538
        // encryption required) is about the deployment's configuration, not this message:
        // retried, so a password rotation or a relay's passing fault loses nothing.
        let refused_authentication =
            matches!(code.to_string().as_str(), "530" | "534" | "535" | "538");
        return if err.is_permanent() && !refused_authentication {
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
    if err.is_tls() || is_tls_failure(err) {
        return DeliveryError::retryable(format!(
            "TLS with the mail server {server} failed: {detail}"
        ));
    }
    if err.is_client() {
        return match detail.as_str() {
            "No compatible authentication mechanism was found" => {
                DeliveryError::permanent(format!(
                    "the mail server {server} offers neither AUTH PLAIN nor AUTH LOGIN, but \
                     a username (smtp.auth_username) is configured"
                ))
            }
            "STARTTLS is not supported on this server" => DeliveryError::retryable(format!(
                "the mail server {server} did not offer STARTTLS, which the configuration \
                 (smtp.starttls) requires; nothing was sent in plaintext"
            )),
            _ => DeliveryError::permanent(format!(
                "the mail server {server} cannot take this message: {detail}"
            )),
        };
    }
    DeliveryError::retryable(format!(
        "could not talk to the mail server {server}: {detail}"
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

//! Herald's email dispatcher (DESIGN §6), over lettre with rustls (ring).
//!
//! [`SmtpConfig`] holds the email settings (the `--email-*` options of `herald server`);
//! [`SmtpConfig::validate`] names the first bad one by its key (`smtp.smarthost`). [`SmtpDispatcher`] sends each message as `multipart/alternative` (plain text and an
//! inline-styled HTML layout) with `Message-ID`, `Date`, `From`, `To`, `Subject` and RFC 8058
//! one-click unsubscribe headers signed with the deployment's
//! [`UnsubscribeKey`](herald_application::unsubscribe::UnsubscribeKey), over pooled
//! connections.
//!
//! Security: port 465 or `--email-force-tls` → implicit TLS; else `--email-tls-starttls` →
//! STARTTLS, required (never a plaintext fallback); else plaintext. AUTH PLAIN is preferred,
//! LOGIN otherwise; other mechanisms the server offers are ignored. An
//! `--email-auth-identity` other than the username is sent as PLAIN's authorization identity
//! (RFC 4616); PLAIN is then required (LOGIN cannot carry an identity).
//!
//! Errors: a 5xx reply to `RCPT TO` (a refused recipient), authentication with no usable
//! mechanism (no PLAIN when acting as an identity) and a message the server cannot take are
//! permanent; any other reply (a 5xx to the greeting, AUTH, `MAIL FROM` or `DATA`
//! included), connection and TLS failures and timeouts are retryable. No lettre type leaves
//! this crate.

mod config;
mod connections;
mod dispatcher;
mod message;
mod plain_identity;

pub use config::{SmtpConfig, SmtpSettings};
pub use dispatcher::SmtpDispatcher;

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
//! (RFC 4616); PLAIN is then required (LOGIN cannot carry an identity), and those deliveries
//! go over lettre's lower-level connection, reusing one idle connection instead of a pool.
//!
//! Errors: 5xx replies (a refused recipient, a refused message, bad credentials) and
//! authentication with no usable mechanism (no PLAIN when acting as an identity) are
//! permanent; connection and TLS failures, 4xx
//! replies and timeouts are retryable. No lettre type leaves this crate.

mod config;
mod dispatcher;
mod message;
mod plain_identity;

pub use config::{SmtpConfig, SmtpSettings};
pub use dispatcher::SmtpDispatcher;

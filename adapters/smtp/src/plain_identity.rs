//! AUTH PLAIN acting as another identity (`--email-auth-identity` other than the username).
//!
//! lettre's AUTH PLAIN always sends an empty authorization identity, so connections that act
//! as another identity authenticate themselves: `AUTH PLAIN` with the initial response
//! base64(`authzid NUL authcid NUL password`) (RFC 4616, RFC 4954), over lettre's lower-level
//! connection ([`crate::connections`] opens it and keeps it like any other).
//!
//! PLAIN is required: LOGIN has no authorization identity, so authenticating with it would
//! silently act as the username instead. A server that does not offer PLAIN fails with
//! [`Failure::NoPlain`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::AsyncSmtpConnection;

use crate::config::PlainIdentity;
use crate::connections::{Failure, Stage};

/// Authenticates `connection` with AUTH PLAIN acting as `plain`'s identity.
///
/// # Errors
/// [`Failure::NoPlain`] when the server does not offer PLAIN, the server's refusal (at
/// [`Stage::Auth`]), or [`Failure::UnexpectedChallenge`] when it asks for more. The caller
/// closes the connection.
pub(crate) async fn authenticate(
    connection: &mut AsyncSmtpConnection,
    plain: &PlainIdentity,
) -> Result<(), Failure> {
    if !connection
        .server_info()
        .supports_auth_mechanism(Mechanism::Plain)
    {
        return Err(Failure::NoPlain);
    }
    let reply = connection
        .command(AuthPlain(plain))
        .await
        .map_err(|error| Failure::Smtp {
            stage: Stage::Auth,
            error,
        })?;
    if !reply.has_code(235) {
        // 334: the server ignored the initial response. RFC 4954 servers take it.
        return Err(Failure::UnexpectedChallenge(reply));
    }
    Ok(())
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

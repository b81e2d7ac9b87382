//! Standard Webhooks signing: `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signing key. Its bytes never appear in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

/// Why a configured secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook.secret: {0}")]
pub struct InvalidSecret(&'static str);

impl InvalidSecret {
    /// The configuration key a bad secret is reported under.
    pub const KEY: &'static str = "webhook.secret";

    pub fn reason(&self) -> &'static str {
        self.0
    }
}

impl WebhookSecret {
    /// Parses a secret as Standard Webhooks writes it: `whsec_` followed by the base64 of the
    /// key. A secret without the prefix is used as raw key bytes.
    ///
    /// # Errors
    /// [`InvalidSecret`] when the secret is empty, or `whsec_` is followed by invalid base64
    /// or nothing.
    pub fn parse(text: &str) -> Result<Self, InvalidSecret> {
        let text = text.trim();
        if text.is_empty() {
            return Err(InvalidSecret("must not be empty"));
        }
        let key = match text.strip_prefix("whsec_") {
            Some(encoded) => STANDARD
                .decode(encoded)
                .map_err(|_| InvalidSecret("the part after whsec_ must be base64"))?,
            None => text.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(InvalidSecret("the key must not be empty"));
        }
        Ok(Self { key })
    }

    /// The `webhook-signature` header value for one request.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            unreachable!("HMAC-SHA256 takes keys of any length")
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_test_vector() {
        let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let signature = secret.sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn any_change_to_id_timestamp_or_body_changes_the_signature() {
        let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let base = secret.sign("a", 1, b"{}");
        assert_ne!(base, secret.sign("b", 1, b"{}"));
        assert_ne!(base, secret.sign("a", 2, b"{}"));
        assert_ne!(base, secret.sign("a", 1, b"{ }"));
    }

    #[test]
    fn bad_secrets_are_refused_and_debug_never_shows_the_key() {
        assert!(WebhookSecret::parse("").is_err());
        assert!(WebhookSecret::parse("whsec_").is_err());
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        let raw = WebhookSecret::parse("plain-shared-secret").unwrap();
        assert_eq!(format!("{raw:?}"), "WebhookSecret(<redacted>)");
        assert!(!format!("{raw:?}").contains("plain"));
    }
}

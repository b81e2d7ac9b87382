//! Signed one-click unsubscribe tokens (RFC 8058, DESIGN §6).
//!
//! An email carries `List-Unsubscribe: <{access_url}/api/v2/notifications/unsubscribe/{token}>`.
//! The token names one user and one template and is signed with a key only the server holds,
//! so it cannot be forged, nor edited to point at another user or template:
//!
//! ```text
//! token = base64url_nopad( user_uuid (16 bytes) ‖ template_uuid (16 bytes)
//!                          ‖ HMAC-SHA256(key, user_uuid ‖ template_uuid) (32 bytes) )
//! ```
//!
//! 64 bytes, so 86 characters. The token does not expire: an unsubscribe link in an old email
//! keeps working, and using it twice does no harm. Rotating the key invalidates every link sent
//! so far.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_domain::{TemplateId, UserId};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

const UUID_LEN: usize = 16;
const MAC_LEN: usize = 32;
const TOKEN_LEN: usize = UUID_LEN * 2 + MAC_LEN;

/// The server-held key that signs unsubscribe tokens. Its bytes never appear in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct UnsubscribeKey(Vec<u8>);

/// Why an [`UnsubscribeKey`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsubscribeKeyError {
    #[error(
        "the unsubscribe key must be at least {min} bytes, got {len}",
        min = UnsubscribeKey::MIN_LEN
    )]
    TooShort { len: usize },
    #[error("could not read random bytes for the unsubscribe key: {0}")]
    Random(String),
}

impl UnsubscribeKey {
    /// The shortest key accepted: as long as the HMAC-SHA256 output.
    pub const MIN_LEN: usize = 32;

    /// A key from stored bytes (as kept by the deployment, so links survive restarts).
    ///
    /// # Errors
    /// [`UnsubscribeKeyError::TooShort`] for keys shorter than [`Self::MIN_LEN`] bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, UnsubscribeKeyError> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_LEN {
            return Err(UnsubscribeKeyError::TooShort { len: bytes.len() });
        }
        Ok(Self(bytes))
    }

    /// A fresh random 32-byte key from the operating system's random source.
    ///
    /// # Errors
    /// [`UnsubscribeKeyError::Random`] when the OS random source fails.
    pub fn generate() -> Result<Self, UnsubscribeKeyError> {
        let mut bytes = vec![0; Self::MIN_LEN];
        getrandom::fill(&mut bytes).map_err(|err| UnsubscribeKeyError::Random(err.to_string()))?;
        Ok(Self(bytes))
    }

    /// The key's bytes, to store a generated key. Keep them secret.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The token for `user`'s unsubscribe link for `template` (URL-safe, no padding).
    pub fn token(&self, user: UserId, template: TemplateId) -> String {
        let mut token = Vec::with_capacity(TOKEN_LEN);
        token.extend_from_slice(user.as_uuid().as_bytes());
        token.extend_from_slice(template.as_uuid().as_bytes());
        let tag = self.mac(&token).finalize().into_bytes();
        token.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The user and template a token was made for, or `None` when it is malformed or was not
    /// signed with this key. The signature is compared in constant time.
    pub fn verify(&self, token: &str) -> Option<(UserId, TemplateId)> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        if bytes.len() != TOKEN_LEN {
            return None;
        }
        let (ids, tag) = bytes.split_at(UUID_LEN * 2);
        self.mac(ids).verify_slice(tag).ok()?;
        let (user, template) = ids.split_at(UUID_LEN);
        Some((
            UserId::from_uuid(Uuid::from_slice(user).ok()?),
            TemplateId::from_uuid(Uuid::from_slice(template).ok()?),
        ))
    }

    fn mac(&self, message: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length; `new_from_slice` only fails for fixed-size MACs.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(message);
        mac
    }
}

impl fmt::Debug for UnsubscribeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnsubscribeKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> UnsubscribeKey {
        UnsubscribeKey::new(vec![byte; 32]).unwrap()
    }

    fn decode(token: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(token).unwrap()
    }

    #[test]
    fn a_token_verifies_to_the_user_and_template_it_was_made_for() {
        let key = key(7);
        let (user, template) = (UserId::random(), TemplateId::random());
        let token = key.token(user, template);
        assert_eq!(token.len(), 86);
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{token}"
        );
        assert_eq!(key.verify(&token), Some((user, template)));
    }

    #[test]
    fn tokens_are_deterministic_and_differ_per_user_and_template() {
        let key = key(7);
        let (user, template) = (UserId::random(), TemplateId::random());
        assert_eq!(key.token(user, template), key.token(user, template));
        assert_ne!(
            key.token(user, template),
            key.token(UserId::random(), template)
        );
        assert_ne!(
            key.token(user, template),
            key.token(user, TemplateId::random())
        );
    }

    #[test]
    fn a_token_with_another_user_or_template_is_rejected() {
        let key = key(7);
        let (user, template) = (UserId::random(), TemplateId::random());
        let token = decode(&key.token(user, template));
        let other = UserId::random();
        for range in [0..16, 16..32] {
            let mut forged = token.clone();
            forged[range].copy_from_slice(other.as_uuid().as_bytes());
            assert_eq!(key.verify(&URL_SAFE_NO_PAD.encode(&forged)), None);
        }
        // Swapping user and template is not a way around it either.
        let mut swapped = token[16..32].to_vec();
        swapped.extend_from_slice(&token[..16]);
        swapped.extend_from_slice(&token[32..]);
        assert_eq!(key.verify(&URL_SAFE_NO_PAD.encode(&swapped)), None);
    }

    #[test]
    fn a_token_with_a_tampered_mac_is_rejected() {
        let key = key(7);
        let token = decode(&key.token(UserId::random(), TemplateId::random()));
        for at in [32, 47, 63] {
            let mut tampered = token.clone();
            tampered[at] ^= 0x01;
            assert_eq!(key.verify(&URL_SAFE_NO_PAD.encode(&tampered)), None);
        }
        // A truncated MAC is not accepted as a prefix.
        assert_eq!(key.verify(&URL_SAFE_NO_PAD.encode(&token[..48])), None);
    }

    #[test]
    fn a_token_from_another_key_is_rejected() {
        let (user, template) = (UserId::random(), TemplateId::random());
        let token = key(1).token(user, template);
        assert_eq!(key(2).verify(&token), None);
        let generated = UnsubscribeKey::generate().unwrap();
        assert_eq!(generated.verify(&token), None);
        assert_eq!(
            generated.verify(&generated.token(user, template)),
            Some((user, template))
        );
    }

    #[test]
    fn garbage_is_rejected() {
        let key = key(7);
        let valid = key.token(UserId::random(), TemplateId::random());
        for garbage in [
            "",
            "x",
            "not a token at all",
            "!!!!",
            &"A".repeat(86),
            &format!("{valid}A"),
            &format!("{valid}=="),
            &valid[..85],
            &valid.replace('-', "+").replace('_', "/"),
        ] {
            if garbage == valid {
                continue;
            }
            assert_eq!(key.verify(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn short_keys_are_refused_and_generated_keys_differ() {
        assert_eq!(
            UnsubscribeKey::new(vec![0; 31]),
            Err(UnsubscribeKeyError::TooShort { len: 31 })
        );
        let a = UnsubscribeKey::generate().unwrap();
        let b = UnsubscribeKey::generate().unwrap();
        assert_eq!(a.expose_bytes().len(), 32);
        assert_ne!(a, b);
        assert_eq!(UnsubscribeKey::new(a.expose_bytes().to_vec()).unwrap(), a);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = UnsubscribeKey::new(b"super-secret-key-material-0123456789".to_vec()).unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains("super-secret"), "{debug}");
        assert!(!debug.contains("115"), "{debug}");
        assert_eq!(debug, "UnsubscribeKey(<redacted>)");
    }
}

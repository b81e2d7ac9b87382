//! Idempotency keys (DESIGN §10.3): a caller's name for one request, so that a retried request
//! is answered as the first was instead of being queued again.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::InvalidValue;

/// A caller's idempotency key: 1 to 255 printable ASCII characters (space to `~`). Only
/// [`IdempotencyKey::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key accepted, in characters.
    pub const MAX_CHARS: usize = 255;

    /// # Errors
    /// [`InvalidValue`] on `idempotency_key` when the key is empty, longer than
    /// [`IdempotencyKey::MAX_CHARS`], or holds anything but printable ASCII.
    pub fn parse(key: &str) -> Result<Self, InvalidValue> {
        if key.is_empty() {
            return Err(InvalidValue::new("idempotency_key", "must not be empty"));
        }
        if key.len() > Self::MAX_CHARS {
            return Err(InvalidValue::new(
                "idempotency_key",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if !key.bytes().all(|byte| (b' '..=b'~').contains(&byte)) {
            return Err(InvalidValue::new(
                "idempotency_key",
                "must be printable ASCII characters only",
            ));
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = InvalidValue;

    fn try_from(key: String) -> Result<Self, InvalidValue> {
        Self::parse(&key)
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> String {
        key.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        assert!(IdempotencyKey::parse("order-42 retry").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("clé").is_err());
    }
}

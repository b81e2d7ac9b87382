use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::UserId;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::StoreError;

/// The SHA-256 hash of an API token: all that is ever stored of it. A leaked table does not
/// leak usable tokens, and a lookup is an exact match on the hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of a token as the caller presented it (its UTF-8 bytes).
    pub fn of(plaintext: &str) -> Self {
        Self(Sha256::digest(plaintext.as_bytes()).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    /// Only a prefix: enough to tell hashes apart in a test failure, not to look one up.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A token to store, already hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub id: Uuid,
    /// The user the token authenticates as.
    pub user: UserId,
    /// A label for people listing tokens; unique among one user's live tokens.
    pub name: String,
    pub hash: TokenHash,
    pub created_at: DateTime<Utc>,
}

/// The standalone server's API tokens (DESIGN §7). Tokens belong to users.
///
/// Implementations MUST store only the hash, MUST answer `find_user` for a live (not revoked)
/// token only, and MUST refuse a second token with the same hash or the same name among the
/// user's live tokens.
///
/// # Errors
/// [`StoreError::Conflict`] on a clashing hash or name; [`StoreError`] when the store fails.
#[async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    async fn insert(&self, token: &NewToken) -> Result<(), StoreError>;

    /// The user a live token with this hash belongs to, recording `now` as its last use.
    async fn find_user(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError>;

    /// Revokes every live token of `user`; returns how many.
    async fn revoke_all(&self, user: UserId, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

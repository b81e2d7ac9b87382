use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::UserId;

use super::{StoreError, TokenHash};

/// A web session or a sign-in link to store: the hash of its secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub hash: TokenHash,
    /// The user it signs in.
    pub user: UserId,
    pub created_at: DateTime<Utc>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// The web pages' server-side sessions and one-time sign-in links (DESIGN §10.6), shared by
/// every replica so that any of them accepts a session another started.
///
/// Implementations MUST store only hashes; MUST answer `find_session` for a session that
/// exists and has not expired at `now` only; MUST hand out a sign-in link's user once at most
/// (`take_link` deletes it in the same step, so two replicas redeeming one link at once cannot
/// both succeed) and not after it expired.
///
/// # Errors
/// [`StoreError::Conflict`] when a hash is already stored; [`StoreError`] when the store fails.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    async fn insert_session(&self, session: &NewSession) -> Result<(), StoreError>;

    /// The user of a live session with this hash.
    async fn find_session(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError>;

    /// Ends one session (sign-out); whether it existed.
    async fn delete_session(&self, hash: &TokenHash) -> Result<bool, StoreError>;

    /// Ends every session of `user` and forgets their unused sign-in links; how many sessions.
    async fn delete_sessions_of(&self, user: UserId) -> Result<u64, StoreError>;

    async fn insert_link(&self, link: &NewSession) -> Result<(), StoreError>;

    /// Redeems a sign-in link: the user of a live link with this hash, deleting it.
    async fn take_link(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError>;

    /// Deletes sessions and links expired at `now`; how many rows.
    async fn delete_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

use async_trait::async_trait;
use herald_domain::{User, UserId};

use super::{StoreError, UserDirectory};

/// A directory Herald itself keeps (standalone mode): hosts sync their users into it.
///
/// # Errors
/// [`StoreError::Conflict`] when another user already has the username or email.
#[async_trait]
pub trait UserRegistry: UserDirectory {
    /// Inserts or replaces the user with this id (un-deleting it).
    async fn upsert(&self, user: &User) -> Result<(), StoreError>;

    /// Flags the user deleted and revokes every API token of theirs in the same step, so a user
    /// re-created with this id (upsert un-deletes) never gets the old tokens back, even when
    /// whatever the caller does next fails; returns whether a non-deleted user existed.
    async fn delete(&self, id: UserId) -> Result<bool, StoreError>;
}

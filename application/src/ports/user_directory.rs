use std::collections::BTreeSet;

use async_trait::async_trait;
use herald_domain::{Role, User, UserId};

use super::StoreError;

/// Who the users are. A Rust host embedding Herald implements this over its own users; the
/// standalone server keeps its own directory (see [`super::UserRegistry`]).
///
/// Implementations MUST report deleted users as `deleted` (or not at all) and MUST NOT return
/// deleted users from `with_any_role`.
///
/// # Errors
/// [`StoreError`] when the directory cannot be read.
#[async_trait]
pub trait UserDirectory: Send + Sync + std::fmt::Debug {
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// The users among `ids` that exist (deleted ones included, flagged), in any order.
    async fn get_many(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError>;

    /// Every non-deleted user holding at least one of `roles`.
    async fn with_any_role(&self, roles: &BTreeSet<Role>) -> Result<Vec<User>, StoreError>;
}

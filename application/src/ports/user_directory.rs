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

    /// One page of [`UserDirectory::with_any_role`]: at most `limit` of those users, the ones
    /// with the lowest ids above `after` (from the lowest id when `None`), in id order. Reading
    /// page after page, each from the last id of the one before, reads every holder once while
    /// holding only a page of them.
    ///
    /// The default reads every holder and keeps the page; a directory that can read a page
    /// alone SHOULD.
    async fn with_any_role_page(
        &self,
        roles: &BTreeSet<Role>,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        let mut users = self.with_any_role(roles).await?;
        users.retain(|user| after.is_none_or(|after| user.id > after));
        users.sort_unstable_by_key(|user| user.id);
        users.truncate(limit);
        Ok(users)
    }
}

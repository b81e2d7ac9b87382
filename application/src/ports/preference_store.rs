use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use herald_domain::{TemplateId, UserId};

use super::StoreError;

/// Users' stored opt-outs: per (user, template) a `disabled` flag. Users without a row get the
/// template's default (see [`herald_domain::is_enabled`]).
///
/// Implementations MUST return exactly the stored rows and MUST apply `set` atomically.
///
/// # Errors
/// [`StoreError`] when the store fails.
#[async_trait]
pub trait PreferenceStore: Send + Sync + std::fmt::Debug {
    /// The user's stored rows: template → disabled.
    async fn for_user(&self, user: UserId) -> Result<BTreeMap<TemplateId, bool>, StoreError>;

    /// Stores (inserts or replaces) the given rows for the user.
    async fn set(
        &self,
        user: UserId,
        disabled: &BTreeMap<TemplateId, bool>,
    ) -> Result<(), StoreError>;

    /// The stored rows among these (user, template) pairs; pairs without a row are absent.
    async fn lookup(
        &self,
        pairs: &[(UserId, TemplateId)],
    ) -> Result<HashMap<(UserId, TemplateId), bool>, StoreError>;
}

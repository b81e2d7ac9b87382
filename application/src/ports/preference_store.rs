use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::{PreferenceScope, StoredPreference, TemplateId, UserId};

use super::StoreError;

/// One template's stored rows for a user, and when the latest of them was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplatePreferences {
    pub stored: StoredPreference,
    pub updated_at: DateTime<Utc>,
}

/// One change to a user's rows: store (`Some`, inserting or replacing) or remove (`None`) the
/// row of (template, scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreferenceChange {
    pub template: TemplateId,
    pub scope: PreferenceScope,
    pub disabled: Option<bool>,
}

/// Users' stored opt-outs: per (user, template, scope) a `disabled` flag, the scope being all
/// methods or one method. Users without a row get the template's default (see
/// [`herald_domain::is_enabled`]).
///
/// Implementations MUST return exactly the stored rows, MUST apply `set` atomically (every
/// change or none), and MUST stamp the rows `set` stores with its `now`. Rows written before
/// per-method rows existed are all-methods rows.
///
/// # Errors
/// [`StoreError`] when the store fails.
#[async_trait]
pub trait PreferenceStore: Send + Sync + std::fmt::Debug {
    /// The user's stored rows, per template that has any; `updated_at` is the latest of that
    /// template's rows.
    async fn for_user(
        &self,
        user: UserId,
    ) -> Result<BTreeMap<TemplateId, TemplatePreferences>, StoreError>;

    /// Applies the changes to the user's rows, each (template, scope) named at most once;
    /// stored rows get `updated_at = now`. Removing a row that does not exist does nothing.
    async fn set(
        &self,
        user: UserId,
        changes: &[PreferenceChange],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The stored rows among these (user, template) pairs; pairs without any row are absent.
    async fn lookup(
        &self,
        pairs: &[(UserId, TemplateId)],
    ) -> Result<HashMap<(UserId, TemplateId), StoredPreference>, StoreError>;
}

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{
    PreferenceChange, PreferenceStore, StoreError, TemplatePreferences,
};
use herald_domain::{PreferenceScope, StoredPreference, TemplateId, UserId};

use super::MemoryStore;

/// One user's rows: (template, scope) → (disabled, updated_at).
type UserRows = BTreeMap<(TemplateId, PreferenceScope), (bool, DateTime<Utc>)>;

/// The stored opt-out rows, per user.
#[derive(Debug, Default)]
pub(super) struct Preferences {
    rows: HashMap<UserId, UserRows>,
}

impl Preferences {
    fn stored(&self, user: UserId, template: TemplateId) -> Option<StoredPreference> {
        let mut stored = StoredPreference::default();
        for (&(_, scope), &(disabled, _)) in self
            .rows
            .get(&user)?
            .iter()
            .filter(|((of, _), _)| *of == template)
        {
            stored.set(scope, Some(disabled));
        }
        (!stored.is_empty()).then_some(stored)
    }
}

#[async_trait]
impl PreferenceStore for MemoryStore {
    async fn for_user(
        &self,
        user: UserId,
    ) -> Result<BTreeMap<TemplateId, TemplatePreferences>, StoreError> {
        self.with(|state| {
            let mut found: BTreeMap<TemplateId, TemplatePreferences> = BTreeMap::new();
            for (&(template, scope), &(disabled, updated_at)) in
                state.preferences.rows.get(&user).into_iter().flatten()
            {
                let entry = found.entry(template).or_insert(TemplatePreferences {
                    stored: StoredPreference::default(),
                    updated_at,
                });
                entry.stored.set(scope, Some(disabled));
                entry.updated_at = entry.updated_at.max(updated_at);
            }
            found
        })
    }

    async fn set(
        &self,
        user: UserId,
        changes: &[PreferenceChange],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with(|state| {
            let rows = state.preferences.rows.entry(user).or_default();
            for change in changes {
                let key = (change.template, change.scope);
                match change.disabled {
                    Some(disabled) => {
                        rows.insert(key, (disabled, now));
                    }
                    None => {
                        rows.remove(&key);
                    }
                }
            }
        })
    }

    async fn lookup(
        &self,
        pairs: &[(UserId, TemplateId)],
    ) -> Result<HashMap<(UserId, TemplateId), StoredPreference>, StoreError> {
        self.with(|state| {
            pairs
                .iter()
                .filter_map(|&(user, template)| {
                    let stored = state.preferences.stored(user, template)?;
                    Some(((user, template), stored))
                })
                .collect()
        })
    }
}

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use herald_application::ports::{PreferenceStore, StoreError};
use herald_domain::{TemplateId, UserId};

use super::MemoryStore;

/// The stored opt-out rows: user → template → disabled.
#[derive(Debug, Default)]
pub(super) struct Preferences {
    rows: HashMap<UserId, BTreeMap<TemplateId, bool>>,
}

#[async_trait]
impl PreferenceStore for MemoryStore {
    async fn for_user(&self, user: UserId) -> Result<BTreeMap<TemplateId, bool>, StoreError> {
        self.with(|state| {
            state
                .preferences
                .rows
                .get(&user)
                .cloned()
                .unwrap_or_default()
        })
    }

    async fn set(
        &self,
        user: UserId,
        disabled: &BTreeMap<TemplateId, bool>,
    ) -> Result<(), StoreError> {
        self.with(|state| {
            let rows = state.preferences.rows.entry(user).or_default();
            rows.extend(
                disabled
                    .iter()
                    .map(|(template, disabled)| (*template, *disabled)),
            );
        })
    }

    async fn lookup(
        &self,
        pairs: &[(UserId, TemplateId)],
    ) -> Result<HashMap<(UserId, TemplateId), bool>, StoreError> {
        self.with(|state| {
            pairs
                .iter()
                .filter_map(|&(user, template)| {
                    let disabled = state.preferences.rows.get(&user)?.get(&template)?;
                    Some(((user, template), *disabled))
                })
                .collect()
        })
    }
}

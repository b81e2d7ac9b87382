use async_trait::async_trait;
use herald_application::ports::{SettingsStore, StoreError};

use super::MemoryStore;

/// Deployment-wide settings.
#[derive(Debug, Default)]
pub(super) struct Settings {
    notifier_paused: bool,
}

#[async_trait]
impl SettingsStore for MemoryStore {
    async fn notifier_paused(&self) -> Result<bool, StoreError> {
        self.with(|state| state.settings.notifier_paused)
    }

    async fn set_notifier_paused(&self, paused: bool) -> Result<bool, StoreError> {
        self.with(|state| {
            let changed = state.settings.notifier_paused != paused;
            state.settings.notifier_paused = paused;
            changed
        })
    }
}

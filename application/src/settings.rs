//! The global pause switch.

use std::sync::Arc;

use crate::Error;
use crate::ports::{SettingsStore, Wakeup};

/// Deployment settings use cases.
#[derive(Debug, Clone)]
pub struct Settings {
    store: Arc<dyn SettingsStore>,
    wakeup: Arc<dyn Wakeup>,
}

impl Settings {
    pub fn new(store: Arc<dyn SettingsStore>, wakeup: Arc<dyn Wakeup>) -> Self {
        Self { store, wakeup }
    }

    /// # Errors
    /// [`Error::Unavailable`] when the store is down.
    pub async fn notifier_paused(&self) -> Result<bool, Error> {
        Ok(self.store.notifier_paused().await?)
    }

    /// Turns the pause switch on or off; returns whether it changed. Resuming wakes the
    /// notifiers so waiting messages go out at once.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is down.
    pub async fn set_notifier_paused(&self, paused: bool) -> Result<bool, Error> {
        let changed = self.store.set_notifier_paused(paused).await?;
        if changed {
            tracing::info!(paused, "notifications: notifier pause switch changed");
            if !paused && let Err(err) = self.wakeup.wake_resumed().await {
                tracing::warn!(error = %err, "notifications: could not wake the notifiers; they will poll");
            }
        }
        Ok(changed)
    }
}

use async_trait::async_trait;

use super::StoreError;

/// Deployment-wide settings shared by every replica.
///
/// Implementations MUST make a change visible to every replica's next read.
///
/// # Errors
/// [`StoreError`] when the store fails.
#[async_trait]
pub trait SettingsStore: Send + Sync + std::fmt::Debug {
    /// Whether the notifiers are paused (the global kill switch).
    async fn notifier_paused(&self) -> Result<bool, StoreError>;

    /// Sets the pause flag; returns whether it changed.
    async fn set_notifier_paused(&self, paused: bool) -> Result<bool, StoreError>;
}

use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::StoreError;

/// Wakes the notifiers (on every replica) when new messages are queued, so they need not wait
/// for their poll interval.
///
/// Implementations MUST wake every live listener at least once after each `wake`, including a
/// listener that was not waiting at that moment (its next `wait` returns at once).
///
/// # Errors
/// [`StoreError::Unavailable`] when the signal could not be sent; notifiers still poll.
#[async_trait]
pub trait Wakeup: Send + Sync + std::fmt::Debug {
    async fn wake(&self) -> Result<(), StoreError>;

    fn subscribe(&self) -> WakeupListener;
}

/// One notifier's end of the wake-up signal.
#[derive(Debug)]
pub struct WakeupListener {
    notify: Arc<Notify>,
}

impl WakeupListener {
    /// Returns once a wake-up arrived since the previous `wait` returned.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

/// In-process fan-out of wake-ups to listeners; wake-up adapters build on it.
#[derive(Debug, Default)]
pub struct WakeupHub {
    listeners: Mutex<Vec<Weak<Notify>>>,
}

impl WakeupHub {
    pub fn subscribe(&self) -> WakeupListener {
        let notify = Arc::new(Notify::new());
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&notify));
        WakeupListener { notify }
    }

    /// Wakes every live listener (a listener not waiting keeps the wake-up for its next wait).
    pub fn wake_all(&self) {
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        listeners.retain(|weak| match weak.upgrade() {
            Some(notify) => {
                notify.notify_one();
                true
            }
            None => false,
        });
    }
}

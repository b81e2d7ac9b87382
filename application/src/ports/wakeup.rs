use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::StoreError;

/// Wakes the notifiers (on every replica) when new messages are queued, so they need not wait
/// for their poll interval.
///
/// Implementations MUST wake every live listener at least once after each `wake` or
/// `wake_resumed`, including a listener that was not waiting at that moment (its next `wait`
/// returns at once), and after a `wake_resumed` that `wait` MUST say [`Wake::Resumed`].
///
/// # Errors
/// [`StoreError::Unavailable`] when the signal could not be sent; notifiers still poll.
#[async_trait]
pub trait Wakeup: Send + Sync + std::fmt::Debug {
    /// Messages were queued.
    async fn wake(&self) -> Result<(), StoreError>;

    /// The pause switch was turned off: a paused notifier reads it again at once, rather than
    /// at its next recheck (see `notifier::PAUSED_RECHECK_INTERVAL`).
    async fn wake_resumed(&self) -> Result<(), StoreError>;

    fn subscribe(&self) -> WakeupListener;
}

/// What a wake-up said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Messages may be waiting.
    Queued,
    /// The pause switch may have been turned off (or a signal may have been missed).
    Resumed,
}

/// A listener's state: woken, and whether a wake-up since the last `wait` was a resume.
#[derive(Debug, Default)]
struct Signal {
    notify: Notify,
    resumed: AtomicBool,
}

/// One notifier's end of the wake-up signal.
#[derive(Debug)]
pub struct WakeupListener {
    signal: Arc<Signal>,
}

impl WakeupListener {
    /// Returns once a wake-up arrived since the previous `wait` returned: [`Wake::Resumed`]
    /// when any of them was a resume. Cancel-safe: a `wait` dropped before it returned
    /// consumes nothing.
    pub async fn wait(&self) -> Wake {
        self.signal.notify.notified().await;
        if self.signal.resumed.swap(false, Ordering::AcqRel) {
            Wake::Resumed
        } else {
            Wake::Queued
        }
    }
}

/// In-process fan-out of wake-ups to listeners; wake-up adapters build on it.
#[derive(Debug, Default)]
pub struct WakeupHub {
    listeners: Mutex<Vec<Weak<Signal>>>,
}

impl WakeupHub {
    pub fn subscribe(&self) -> WakeupListener {
        let signal = Arc::new(Signal::default());
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&signal));
        WakeupListener { signal }
    }

    /// Wakes every live listener with [`Wake::Queued`] (a listener not waiting keeps the
    /// wake-up for its next wait).
    pub fn wake_all(&self) {
        self.wake_each(false);
    }

    /// Wakes every live listener with [`Wake::Resumed`].
    pub fn wake_all_resumed(&self) {
        self.wake_each(true);
    }

    fn wake_each(&self, resumed: bool) {
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        listeners.retain(|weak| match weak.upgrade() {
            Some(signal) => {
                if resumed {
                    signal.resumed.store(true, Ordering::Release);
                }
                signal.notify.notify_one();
                true
            }
            None => false,
        });
    }
}

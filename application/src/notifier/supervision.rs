//! Supervision: a notifier whose loop panics is started again, and its health is visible
//! (for `/readyz`).

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Notifier;

/// How long a supervised notifier waits before starting again after a panic.
pub const RESTART_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a supervised notifier is running; clones share the answer (for `/readyz`).
#[derive(Debug, Clone)]
pub struct NotifierHealth(Arc<std::sync::atomic::AtomicBool>);

impl NotifierHealth {
    pub(super) fn new() -> Self {
        Self(Arc::new(std::sync::atomic::AtomicBool::new(true)))
    }

    /// `false` from a panic of the notifier's loop until it runs again.
    pub fn is_running(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn set(&self, running: bool) {
        self.0.store(running, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A running notifier.
#[derive(Debug)]
pub struct NotifierHandle {
    pub(super) stop: watch::Sender<bool>,
    pub(super) task: JoinHandle<()>,
    pub(super) health: NotifierHealth,
}

impl NotifierHandle {
    /// Runs the notifiers `make` builds, one at a time, until stopped: when one's loop panics
    /// (a bug, or a port that panicked), the panic is logged, [`NotifierHealth`] reads not
    /// running, and a new one starts after [`RESTART_DELAY`]. What the panicked one had leased
    /// comes back when its lease expires.
    pub fn supervise(make: impl Fn() -> Notifier + Send + 'static) -> Self {
        let (stop, stopped) = watch::channel(false);
        let health = NotifierHealth::new();
        let task = tokio::spawn({
            let health = health.clone();
            async move {
                loop {
                    let notifier = make();
                    let name = notifier.name().to_owned();
                    match tokio::spawn(notifier.run(stopped.clone())).await {
                        Ok(()) => break,
                        Err(err) if err.is_panic() => {
                            health.set(false);
                            tracing::error!(notifier = %name, error = %err, "notifications: the notifier panicked; starting it again");
                        }
                        Err(err) => {
                            tracing::error!(notifier = %name, error = %err, "notifications: notifier task ended abnormally");
                            break;
                        }
                    }
                    let mut stopping = stopped.clone();
                    tokio::select! {
                        () = tokio::time::sleep(RESTART_DELAY) => {}
                        _ = stopping.wait_for(|stop| *stop) => break,
                    }
                    health.set(true);
                }
            }
        });
        Self { stop, task, health }
    }

    /// Whether the notifier runs (shared with its clones).
    pub fn health(&self) -> NotifierHealth {
        self.health.clone()
    }

    /// Stops leasing, lets the dispatches in flight finish (each bounded by the dispatch
    /// timeout), writes every result back, and returns once the notifier has stopped.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "notifications: notifier task ended abnormally");
        }
    }
}

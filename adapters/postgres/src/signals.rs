//! Cross-replica signals over LISTEN/NOTIFY: notifier wake-ups and the live inbox feed.
//!
//! One background task per replica holds a LISTEN connection on both channels and fans
//! what arrives out in-process ([`WakeupHub`], [`InboxFanout`]). If the connection drops (the
//! database restarted, the backend was terminated), the listener reconnects by itself and wakes
//! every notifier once, since a wake-up may have been missed in between; notifiers also keep
//! their fallback poll. A connection whose peer went silent (no reset: a dead host, a dropped
//! network path) would wait for notifications forever, so a connection quiet for
//! [`HEARTBEAT`] must answer a `SELECT 1` within [`HEARTBEAT_ANSWER`], else it is replaced.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_application::ports::{
    InboxFanout, InboxFeed, InboxSubscription, StoreError, Wakeup, WakeupHub, WakeupListener,
};
use herald_domain::{InboxNotification, UserId};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::error::store_error;
use crate::inbox::fetch_notification;

/// Channel that wakes notifiers after an enqueue (empty payload) or a resume
/// ([`RESUMED_PAYLOAD`]).
pub const WAKEUP_CHANNEL: &str = "herald_wakeup";
/// The payload on [`WAKEUP_CHANNEL`] that says the pause switch was turned off.
pub const RESUMED_PAYLOAD: &str = "resumed";
/// Channel announcing inbox notifications (an [`InboxSignal`] as JSON).
pub const INBOX_CHANNEL: &str = "herald_inbox";

/// NOTIFY payloads must stay under 8000 bytes; a notification larger than this travels by
/// reference and replicas with watchers of its user load it from the table.
const MAX_INLINE_PAYLOAD: usize = 7_000;

/// What travels on [`INBOX_CHANNEL`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum InboxSignal {
    Inline { notification: InboxNotification },
    Stored { user_id: UserId, id: Uuid },
}

/// How long the LISTEN connection may stay quiet before it is asked to answer.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// How long a quiet LISTEN connection has to answer before it is replaced.
pub const HEARTBEAT_ANSWER: Duration = Duration::from_secs(10);

/// How far a live inbox watcher may fall behind before it is dropped.
const WATCHER_CAPACITY: usize = 64;

/// Wake-ups and the inbox feed of one replica.
#[derive(Debug)]
pub struct PgSignals {
    pool: PgPool,
    hub: Arc<WakeupHub>,
    fanout: Arc<InboxFanout>,
    listener: JoinHandle<()>,
}

impl PgSignals {
    /// Opens the LISTEN connection and starts the task that fans signals out.
    ///
    /// # Errors
    /// [`StoreError`] when the LISTEN connection cannot be made at start.
    pub async fn start(pool: PgPool) -> Result<Self, StoreError> {
        Self::start_with_heartbeat(pool, HEARTBEAT, HEARTBEAT_ANSWER).await
    }

    /// As [`PgSignals::start`], the LISTEN connection asked to answer after `quiet` without a
    /// notification and replaced when it does not within `answer` (tests shorten both).
    ///
    /// # Errors
    /// As [`PgSignals::start`].
    pub async fn start_with_heartbeat(
        pool: PgPool,
        quiet: Duration,
        answer: Duration,
    ) -> Result<Self, StoreError> {
        let listener = listening(&pool).await?;
        let hub = Arc::new(WakeupHub::default());
        let fanout = Arc::new(InboxFanout::new(WATCHER_CAPACITY));
        let heartbeat = Heartbeat { quiet, answer };
        let task = tokio::spawn(listen(
            listener,
            pool.clone(),
            hub.clone(),
            fanout.clone(),
            heartbeat,
        ));
        Ok(Self {
            pool,
            hub,
            fanout,
            listener: task,
        })
    }

    /// Sends `payload` on `channel` to every replica's listener.
    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

impl Drop for PgSignals {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// A LISTEN connection on both channels.
async fn listening(pool: &PgPool) -> Result<PgListener, StoreError> {
    let mut listener = PgListener::connect_with(pool).await.map_err(store_error)?;
    listener
        .listen_all([WAKEUP_CHANNEL, INBOX_CHANNEL])
        .await
        .map_err(store_error)?;
    Ok(listener)
}

/// When the LISTEN connection must prove it is alive.
#[derive(Debug, Clone, Copy)]
struct Heartbeat {
    quiet: Duration,
    answer: Duration,
}

async fn listen(
    mut listener: PgListener,
    pool: PgPool,
    hub: Arc<WakeupHub>,
    fanout: Arc<InboxFanout>,
    heartbeat: Heartbeat,
) {
    loop {
        let Ok(received) = tokio::time::timeout(heartbeat.quiet, listener.try_recv()).await else {
            let alive = tokio::time::timeout(
                heartbeat.answer,
                sqlx::query("SELECT 1").execute(&mut listener),
            )
            .await;
            if matches!(alive, Ok(Ok(_))) {
                continue;
            }
            tracing::warn!("notifications: the LISTEN connection stopped answering; replacing it");
            match tokio::time::timeout(heartbeat.answer, listening(&pool)).await {
                Ok(Ok(replacement)) => {
                    // Dropped without a goodbye: the dead peer would never answer one.
                    drop(std::mem::replace(&mut listener, replacement));
                    hub.wake_all_resumed();
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "notifications: could not open a new LISTEN connection; retrying");
                }
                Err(_) => {
                    tracing::warn!(
                        "notifications: opening a new LISTEN connection took too long; retrying"
                    );
                }
            }
            continue;
        };
        match received {
            Ok(Some(notification)) => match notification.channel() {
                WAKEUP_CHANNEL if notification.payload() == RESUMED_PAYLOAD => {
                    hub.wake_all_resumed();
                }
                WAKEUP_CHANNEL => hub.wake_all(),
                INBOX_CHANNEL => forward_inbox(notification.payload(), &pool, &fanout).await,
                _ => {}
            },
            // The connection was lost; the next `try_recv` reconnects and listens again.
            Ok(None) => {
                tracing::warn!("notifications: the LISTEN connection was lost; reconnecting");
                // A resume may have been missed too: paused notifiers read the switch again.
                hub.wake_all_resumed();
            }
            Err(err) => {
                tracing::warn!(error = %err, "notifications: LISTEN failed; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Hands an announced notification to this replica's watchers of its user, if any (loading it
/// first when it travelled by reference).
async fn forward_inbox(payload: &str, pool: &PgPool, fanout: &InboxFanout) {
    let (user, id) = match serde_json::from_str::<InboxSignal>(payload) {
        Ok(InboxSignal::Inline { notification }) => {
            fanout.publish(&notification);
            return;
        }
        Ok(InboxSignal::Stored { user_id, id }) => (user_id, id),
        Err(err) => {
            tracing::warn!(error = %err, "notifications: ignoring a malformed inbox signal");
            return;
        }
    };
    if fanout.watcher_count(user) == 0 {
        return;
    }
    match fetch_notification(pool, id).await {
        Ok(Some(notification)) => {
            fanout.publish(&notification);
        }
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(error = %err, "notifications: could not load an announced inbox notification")
        }
    }
}

#[async_trait]
impl Wakeup for PgSignals {
    async fn wake(&self) -> Result<(), StoreError> {
        self.notify(WAKEUP_CHANNEL, "").await
    }

    async fn wake_resumed(&self) -> Result<(), StoreError> {
        self.notify(WAKEUP_CHANNEL, RESUMED_PAYLOAD).await
    }

    fn subscribe(&self) -> WakeupListener {
        self.hub.subscribe()
    }
}

#[async_trait]
impl InboxFeed for PgSignals {
    /// Announces the notification to every replica: inline when it fits a NOTIFY payload,
    /// else by reference to its stored row (the inbox dispatcher stores before it publishes).
    async fn publish(&self, notification: &InboxNotification) -> Result<(), StoreError> {
        let encode = |signal: &InboxSignal| {
            serde_json::to_string(signal)
                .map_err(|err| StoreError::Other(format!("encoding an inbox signal: {err}")))
        };
        let mut payload = encode(&InboxSignal::Inline {
            notification: notification.clone(),
        })?;
        if payload.len() > MAX_INLINE_PAYLOAD {
            payload = encode(&InboxSignal::Stored {
                user_id: notification.user_id,
                id: *notification.id.as_uuid(),
            })?;
        }
        self.notify(INBOX_CHANNEL, &payload).await
    }

    async fn subscribe(&self, user: UserId) -> Result<InboxSubscription, StoreError> {
        Ok(self.fanout.subscribe(user))
    }
}

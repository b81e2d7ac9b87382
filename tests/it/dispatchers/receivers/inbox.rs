//! The inbox dispatcher storing into the memory store or PostgreSQL, through a recorder that
//! notes each notification the dispatcher hands the store (the inbox's "received").
//!
//! The inbox has no peer to answer: it fails when its store does. The memory store fails by
//! [`MemoryStore::set_unavailable`]; PostgreSQL by a trigger refusing inbox rows (an error
//! the database raises, as when it runs out of room), and hangs behind a lock on the inbox
//! table that another transaction holds.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{
    Delivery, Dispatcher, InboxFeed, InboxQuery, InboxStore, StoreError, SystemClock,
};
use herald_domain::{InboxNotification, InboxNotificationId, MessageId, Method, UserId};
use herald_inbox::InboxDispatcher;
use herald_memory::{MemoryInboxFeed, MemoryStore};
use herald_postgres::PgSignals;
use herald_tests::postgres::TestDatabase;
use herald_tests::sample;
use sqlx::{Postgres, Transaction};

use crate::dispatchers::{Receiver, ReceiverUnderTest};

/// The inbox over a fresh memory store.
pub async fn inbox_memory() -> Receiver {
    let store = MemoryStore::new();
    InboxReceiver::over(
        Arc::new(store.clone()),
        Arc::new(MemoryInboxFeed::new()),
        Failures::Memory(store),
    )
}

/// The inbox over a fresh PostgreSQL database, its live feed on LISTEN/NOTIFY.
pub async fn inbox_postgres() -> Receiver {
    let database = TestDatabase::create().await;
    let feed = PgSignals::start(database.store.pool().clone())
        .await
        .expect("LISTEN on the test database");
    InboxReceiver::over(
        Arc::new(database.store.clone()),
        Arc::new(feed),
        Failures::Postgres {
            database,
            lock: tokio::sync::Mutex::new(None),
        },
    )
}

struct InboxReceiver {
    store: Arc<RecordingInboxStore>,
    dispatcher: Arc<InboxDispatcher>,
    failures: Failures,
}

/// How the store behind the inbox is made to fail.
enum Failures {
    Memory(MemoryStore),
    Postgres {
        database: TestDatabase,
        /// The transaction holding the inbox table locked, while hanging.
        lock: tokio::sync::Mutex<Option<Transaction<'static, Postgres>>>,
    },
}

impl InboxReceiver {
    fn over(store: Arc<dyn InboxStore>, feed: Arc<dyn InboxFeed>, failures: Failures) -> Receiver {
        let store = Arc::new(RecordingInboxStore {
            inner: store,
            inserted: Mutex::default(),
        });
        let dispatcher = InboxDispatcher::new(store.clone(), feed, Arc::new(SystemClock));
        Box::new(Self {
            store,
            dispatcher: Arc::new(dispatcher),
            failures,
        })
    }
}

/// Runs `sql` on the test database, failing the test if it fails.
async fn execute(database: &TestDatabase, sql: &str) {
    if let Err(err) = sqlx::raw_sql(sql).execute(database.store.pool()).await {
        panic!("cannot run {sql:?} on the test database: {err}");
    }
}

const REFUSE_INBOX_ROWS: &str = "\
    CREATE FUNCTION refuse_inbox_rows() RETURNS trigger LANGUAGE plpgsql AS $$ \
    BEGIN RAISE EXCEPTION 'the test refuses inbox rows' USING ERRCODE = 'disk_full'; END $$; \
    CREATE TRIGGER refuse_inbox_rows BEFORE INSERT ON inbox_notifications \
    FOR EACH ROW EXECUTE FUNCTION refuse_inbox_rows();";

const ACCEPT_INBOX_ROWS: &str = "\
    DROP TRIGGER IF EXISTS refuse_inbox_rows ON inbox_notifications; \
    DROP FUNCTION IF EXISTS refuse_inbox_rows();";

#[async_trait]
impl ReceiverUnderTest for InboxReceiver {
    fn dispatcher(&self) -> Arc<dyn Dispatcher> {
        self.dispatcher.clone()
    }

    fn delivery(&self) -> Delivery {
        sample::delivery(Method::Inbox)
    }

    async fn accept(&self) {
        match &self.failures {
            Failures::Memory(store) => store.set_unavailable(false),
            Failures::Postgres { database, lock } => {
                if let Some(held) = lock.lock().await.take() {
                    held.rollback().await.expect("the lock is given back");
                }
                execute(database, ACCEPT_INBOX_ROWS).await;
            }
        }
    }

    /// The memory store unavailable; PostgreSQL raising `disk_full` on every inbox row.
    async fn answer_retryable(&self) {
        match &self.failures {
            Failures::Memory(store) => store.set_unavailable(true),
            Failures::Postgres { database, .. } => execute(database, REFUSE_INBOX_ROWS).await,
        }
    }

    /// # Panics
    /// Always: every store failure may clear, so the inbox never fails permanently.
    async fn answer_permanent(&self) {
        panic!("the inbox has no permanent failure: every store failure may clear");
    }

    /// PostgreSQL's inbox table locked by another transaction until [`accept`](Self::accept).
    ///
    /// # Panics
    /// On the memory store, which never blocks.
    async fn hang(&self) {
        let Failures::Postgres { database, lock } = &self.failures else {
            panic!("the memory store never blocks");
        };
        let mut held = database
            .store
            .pool()
            .begin()
            .await
            .expect("a transaction to hold the lock");
        sqlx::query("LOCK TABLE inbox_notifications IN EXCLUSIVE MODE")
            .execute(&mut *held)
            .await
            .expect("the inbox table locked");
        *lock.lock().await = Some(held);
    }

    async fn received(&self) -> Vec<MessageId> {
        self.store.inserted().clone()
    }

    /// Handed to PostgreSQL, and some statement waiting for the inbox table's lock.
    async fn holds(&self, id: MessageId) -> bool {
        let Failures::Postgres { database, .. } = &self.failures else {
            panic!("the memory store never blocks");
        };
        if !self.store.inserted().contains(&id) {
            return false;
        }
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks \
             WHERE NOT granted AND relation = 'inbox_notifications'::regclass \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(database.store.pool())
        .await
        .expect("the test database lists its locks");
        waiting > 0
    }

    fn own_timeout(&self) -> Option<Duration> {
        None
    }
}

/// An inbox store noting the id of each notification handed to it, before it stores it.
#[derive(Debug)]
struct RecordingInboxStore {
    inner: Arc<dyn InboxStore>,
    inserted: Mutex<Vec<MessageId>>,
}

impl RecordingInboxStore {
    fn inserted(&self) -> MutexGuard<'_, Vec<MessageId>> {
        self.inserted.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl InboxStore for RecordingInboxStore {
    async fn insert(&self, notification: &InboxNotification) -> Result<bool, StoreError> {
        self.inserted()
            .push(MessageId::from_uuid(*notification.id.as_uuid()));
        self.inner.insert(notification).await
    }

    async fn list(&self, query: &InboxQuery) -> Result<Vec<InboxNotification>, StoreError> {
        self.inner.list(query).await
    }

    async fn unread_count(&self, user: UserId) -> Result<u64, StoreError> {
        self.inner.unread_count(user).await
    }

    async fn set_read(
        &self,
        user: UserId,
        id: InboxNotificationId,
        read_at: Option<DateTime<Utc>>,
    ) -> Result<Option<InboxNotification>, StoreError> {
        self.inner.set_read(user, id, read_at).await
    }

    async fn mark_all_read(&self, user: UserId, at: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.mark_all_read(user, at).await
    }
}

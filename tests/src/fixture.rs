//! The backends every contract suite runs against.
//!
//! A contract test is an `async fn name(backend: Backend)` that drives the ports of a fresh
//! [`Backend`]. `contract_suite! { backends: [memory, postgres]; name, … }` turns each into one
//! `#[tokio::test]` per listed backend, in a module named after the backend
//! (`contract::users::postgres::name`). A backend is a function of this module
//! (`pub async fn postgres() -> Backend`) giving ports over a fresh store.
//!
//! Every suite runs on `memory` and `postgres`, and lists its backends where it calls
//! [`contract_suite!`](crate::contract_suite); the template suite also runs on
//! `postgres_cached` (PostgreSQL read through the server's template cache).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_application::CachedTemplates;
use herald_application::ports::{
    BuildStore, InboxFeed, InboxStore, MessageQueue, PreferenceStore, RateCounter, ReportLog,
    ResourceStateStore, SessionStore, SettingsStore, SystemClock, TaskStateStore, TemplateStore,
    TokenStore, UserRegistry, Wakeup, WakeupListener,
};
use herald_application::templates::TEMPLATE_CACHE_TTL;
use herald_memory::{MemoryInboxFeed, MemoryStore, MemoryWakeup};

use crate::link::Link;
use crate::postgres::TestDatabase;
use herald_postgres::{PgSignals, PgStore, RESUMED_PAYLOAD, WAKEUP_CHANNEL};
use sqlx::postgres::PgListener;

/// The ports of one backend for one test: a store of its own (the catalogue seeded, nothing
/// else), its inbox feed and its wake-ups.
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: &'static str,
    pub users: Arc<dyn UserRegistry>,
    pub preferences: Arc<dyn PreferenceStore>,
    pub templates: Arc<dyn TemplateStore>,
    pub queue: Arc<dyn MessageQueue>,
    pub settings: Arc<dyn SettingsStore>,
    pub inbox: Arc<dyn InboxStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub rates: Arc<dyn RateCounter>,
    pub resources: Arc<dyn ResourceStateStore>,
    pub tasks: Arc<dyn TaskStateStore>,
    pub builds: Arc<dyn BuildStore>,
    pub report_log: Arc<dyn ReportLog>,
    pub inbox_feed: Arc<dyn InboxFeed>,
    pub wakeup: Arc<dyn Wakeup>,
    pub hooks: Arc<dyn BackendHooks>,
}

impl Backend {
    /// The ports of a second replica sharing this backend's store, feed and wake-ups.
    pub async fn replica(&self) -> Backend {
        self.hooks.replica().await
    }

    /// Watches the wake-ups sent on this backend from now on, in the order they were sent.
    pub async fn watch_wakeups(&self) -> Box<dyn WakeupWatch> {
        self.hooks.watch_wakeups().await
    }

    /// Plays another replica holding the purge lock until the returned value is dropped.
    pub async fn hold_purge_lock(&self) -> PurgeLockHeld {
        self.hooks.hold_purge_lock().await
    }

    /// Makes the storage ports fail with `StoreError::Unavailable` (changing nothing) while
    /// `true`: the memory store's failure switch; PostgreSQL's connections cut, and new ones
    /// closed, by the [`Link`] the backend reaches its server through.
    pub async fn set_unavailable(&self, unavailable: bool) {
        self.hooks.set_unavailable(unavailable).await;
    }
}

/// What a backend offers beyond its ports: replicas, and failure injection.
#[async_trait]
pub trait BackendHooks: Send + Sync + fmt::Debug {
    async fn replica(&self) -> Backend;

    async fn hold_purge_lock(&self) -> PurgeLockHeld;

    async fn set_unavailable(&self, unavailable: bool);

    async fn watch_wakeups(&self) -> Box<dyn WakeupWatch>;
}

/// The wake-ups a backend sent since a watch began, seen without waiting for one that may
/// never come.
#[async_trait]
pub trait WakeupWatch: Send + fmt::Debug {
    /// Whether a "messages were queued" wake-up was sent since the previous call (or since
    /// the watch began); every wake-up sent before this call is counted.
    async fn any_queued_since(&mut self) -> bool;
}

/// The memory backend's wake-ups reach listeners before `wake` returns: a listener of its own
/// holds one if any was sent.
#[derive(Debug)]
struct ListenerWatch {
    listener: WakeupListener,
}

#[async_trait]
impl WakeupWatch for ListenerWatch {
    async fn any_queued_since(&mut self) -> bool {
        is_ready_now(self.listener.wait()).await
    }
}

/// PostgreSQL's wake-ups are NOTIFYs on [`WAKEUP_CHANNEL`], delivered in commit order: a
/// connection LISTENing there sees every one sent before a sentinel NOTIFY of its own.
#[derive(Debug)]
struct NotifyWatch {
    listener: PgListener,
    store: PgStore,
}

#[async_trait]
impl WakeupWatch for NotifyWatch {
    async fn any_queued_since(&mut self) -> bool {
        let sentinel = format!("sentinel-{}", uuid::Uuid::new_v4().simple());
        if let Err(err) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WAKEUP_CHANNEL)
            .bind(&sentinel)
            .execute(self.store.pool())
            .await
        {
            panic!("cannot send the sentinel NOTIFY: {err}");
        }
        let mut queued = false;
        within("the sentinel NOTIFY", async {
            loop {
                match self.listener.recv().await {
                    Ok(notification) if notification.payload() == sentinel => break,
                    Ok(notification) => queued |= notification.payload() != RESUMED_PAYLOAD,
                    Err(err) => panic!("the wake-up watch lost its connection: {err}"),
                }
            }
        })
        .await;
        queued
    }
}

/// How a backend gives a held purge lock back.
type Release = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The purge lock, held by a pretend replica until [`PurgeLockHeld::release`]d.
pub struct PurgeLockHeld {
    release: Release,
}

impl PurgeLockHeld {
    /// Wraps a guard that releases the lock when dropped (the memory store's).
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self::released_by(move || async move { drop(guard) })
    }

    /// Wraps an asynchronous release (a PostgreSQL connection unlocking and closing).
    pub fn released_by<F, Fut>(release: F) -> Self
    where
        F: FnOnce() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            release: Box::new(move || Box::pin(release())),
        }
    }

    /// Gives the lock back; once this returns, another purge can take it.
    pub async fn release(self) {
        (self.release)().await;
    }
}

impl fmt::Debug for PurgeLockHeld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PurgeLockHeld")
    }
}

/// A fresh PostgreSQL backend with its templates read through a [`CachedTemplates`], as the
/// server reads them: the cache must keep the `TemplateStore` contract.
pub async fn postgres_cached() -> Backend {
    let mut backend = postgres().await;
    backend.name = "postgres_cached";
    backend.templates = Arc::new(CachedTemplates::new(
        backend.templates.clone(),
        Arc::new(SystemClock),
        TEMPLATE_CACHE_TTL,
    ));
    backend
}

/// A fresh in-memory backend: one [`MemoryStore`] behind every storage port.
pub async fn memory() -> Backend {
    MemoryBackend {
        store: MemoryStore::new(),
        inbox_feed: Arc::new(MemoryInboxFeed::new()),
        wakeup: Arc::new(MemoryWakeup::new()),
    }
    .backend()
}

/// The in-memory backend: replicas in one process share the store, the feed and the wake-ups.
#[derive(Debug, Clone)]
struct MemoryBackend {
    store: MemoryStore,
    inbox_feed: Arc<MemoryInboxFeed>,
    wakeup: Arc<MemoryWakeup>,
}

impl MemoryBackend {
    fn backend(self) -> Backend {
        let store = Arc::new(self.store.clone());
        Backend {
            name: "memory",
            users: store.clone(),
            preferences: store.clone(),
            templates: store.clone(),
            queue: store.clone(),
            settings: store.clone(),
            inbox: store.clone(),
            tokens: store.clone(),
            sessions: store.clone(),
            rates: store.clone(),
            resources: store.clone(),
            tasks: store.clone(),
            builds: store.clone(),
            report_log: store,
            inbox_feed: self.inbox_feed.clone(),
            wakeup: self.wakeup.clone(),
            hooks: Arc::new(self),
        }
    }
}

#[async_trait]
impl BackendHooks for MemoryBackend {
    async fn replica(&self) -> Backend {
        self.clone().backend()
    }

    async fn hold_purge_lock(&self) -> PurgeLockHeld {
        PurgeLockHeld::new(self.store.hold_purge_lock())
    }

    async fn set_unavailable(&self, unavailable: bool) {
        self.store.set_unavailable(unavailable);
    }

    async fn watch_wakeups(&self) -> Box<dyn WakeupWatch> {
        Box::new(ListenerWatch {
            listener: self.wakeup.subscribe(),
        })
    }
}

/// A fresh PostgreSQL backend: a database of its own (migrated, the catalogue seeded).
///
/// Every port is PostgreSQL: [`herald_postgres::PgStore`] for the stores and the queue,
/// [`herald_postgres::PgSignals`] (LISTEN/NOTIFY) for the inbox feed and wake-ups. Their
/// connections go through a [`Link`] to the server, which [`Backend::set_unavailable`] cuts.
///
/// # Panics
/// When no test server is available (see [`crate::postgres`]).
pub async fn postgres() -> Backend {
    let database = Arc::new(TestDatabase::create().await);
    let link = Arc::new(Link::to(TestDatabase::server_address().await).await);
    PostgresBackend::on(database, link).await.backend()
}

/// The PostgreSQL backend. A replica is another pool and LISTEN connection on the same
/// database, through the same link, as another `herald` process would have. The database is
/// dropped with the last handle on it.
#[derive(Debug, Clone)]
struct PostgresBackend {
    database: Arc<TestDatabase>,
    link: Arc<Link>,
    store: PgStore,
    signals: Arc<PgSignals>,
}

impl PostgresBackend {
    async fn on(database: Arc<TestDatabase>, link: Arc<Link>) -> Self {
        let store = database.store_via(link.address()).await;
        let signals = match PgSignals::start(store.pool().clone()).await {
            Ok(signals) => Arc::new(signals),
            Err(err) => panic!(
                "cannot LISTEN on the test database {}: {err}",
                database.name
            ),
        };
        Self {
            database,
            link,
            store,
            signals,
        }
    }

    fn backend(self) -> Backend {
        let store = Arc::new(self.store.clone());
        Backend {
            name: "postgres",
            users: store.clone(),
            preferences: store.clone(),
            templates: store.clone(),
            settings: store.clone(),
            inbox: store.clone(),
            tokens: store.clone(),
            sessions: store.clone(),
            rates: store.clone(),
            resources: store.clone(),
            tasks: store.clone(),
            builds: store.clone(),
            report_log: store.clone(),
            queue: store,
            inbox_feed: self.signals.clone(),
            wakeup: self.signals.clone(),
            hooks: Arc::new(self),
        }
    }
}

#[async_trait]
impl BackendHooks for PostgresBackend {
    async fn replica(&self) -> Backend {
        Self::on(self.database.clone(), self.link.clone())
            .await
            .backend()
    }

    async fn hold_purge_lock(&self) -> PurgeLockHeld {
        match self.store.hold_purge_lock().await {
            Ok(holder) => PurgeLockHeld::released_by(move || async move {
                if let Err(err) = holder.release().await {
                    panic!("cannot release the purge lock: {err}");
                }
            }),
            Err(err) => panic!("cannot take the purge lock: {err}"),
        }
    }

    async fn set_unavailable(&self, unavailable: bool) {
        if unavailable {
            self.link.cut().await;
        } else {
            self.link.restore();
        }
    }

    async fn watch_wakeups(&self) -> Box<dyn WakeupWatch> {
        // Straight to the server, so a cut link does not blind the watch.
        let store = self.database.store.clone();
        let mut listener = match PgListener::connect_with(store.pool()).await {
            Ok(listener) => listener,
            Err(err) => panic!("cannot connect the wake-up watch: {err}"),
        };
        if let Err(err) = listener.listen(WAKEUP_CHANNEL).await {
            panic!("cannot LISTEN for wake-ups: {err}");
        }
        Box::new(NotifyWatch { listener, store })
    }
}

/// How long a test waits for something that must happen (a notification, a wake-up) before
/// failing. Generous: only a broken backend ever waits this long.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
///
/// # Panics
/// When `future` does not finish in time; `what` says what was awaited.
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not happen within {PATIENCE:?}"),
    }
}

/// Whether `future` is ready on its first poll, without waiting at all.
pub async fn is_ready_now<F: Future>(future: F) -> bool {
    tokio::time::timeout(Duration::ZERO, future).await.is_ok()
}

/// Stamps a suite's tests out for one backend: a module named after the backend holding one
/// `#[tokio::test]` per test fn, each given a fresh backend from `$fresh`.
#[macro_export]
macro_rules! contract_tests {
    ($backend:ident => $fresh:path; [$($test:ident),+ $(,)?]) => {
        $crate::contract_tests!($backend => $fresh; $($test),+);
    };
    ($backend:ident => $fresh:path; $($test:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test($fresh().await).await;
                }
            )+
        }
    };
}

/// Stamps a contract suite's tests out for each listed backend (`memory`, `postgres`: functions
/// of [`crate::fixture`]). Every suite names its backends where it is declared, so which ports
/// run on which backend reads off the suites:
///
/// ```text
/// herald_tests::contract_suite! {
///     backends: [memory, postgres];
///     the_notifier_starts_unpaused,
/// }
/// ```
#[macro_export]
macro_rules! contract_suite {
    (backends: [$($backend:ident),+ $(,)?]; $($test:ident),+ $(,)?) => {
        $crate::contract_suite!(@each [$($backend),+] [$($test),+]);
    };
    (@each [$($backend:ident),+] $tests:tt) => {
        $(
            $crate::contract_tests!($backend => $crate::fixture::$backend; $tests);
        )+
    };
}

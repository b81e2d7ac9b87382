//! Notifiers on PostgreSQL as separate replicas would run them: separate pools, one database.
//! DESIGN §5 and the PostgreSQL issue's behaviours: exactly-once draining across replicas,
//! takeover of a dead notifier's lease, wake-ups by the enqueue itself (also after the LISTEN connection was
//! killed), and no loss when the write-back cannot reach the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herald_application::ports::{
    Clock, Delivery, DeliveryError, Dispatcher, LeaseRequest, MessageFilter, MessageQueue,
    NewMessage, NoMetrics, SystemClock, UserRegistry,
};
use herald_application::unsubscribe::UnsubscribeKey;
use herald_application::{Config, Cycle, DefaultMethod, Notifier, NotifierConfig, Ports, Services};
use herald_domain::{MessageId, MessageStatus, Method, UserId};
use herald_memory::ManualClock;
use herald_postgres::{PgSignals, PgStore};
use herald_tests::fixture::{PATIENCE, within};
use herald_tests::link::Link;
use herald_tests::postgres::TestDatabase;
use herald_tests::sample;
use tokio::sync::Notify;

/// Counts deliveries per message id.
#[derive(Debug, Default)]
struct Counting {
    delivered: Mutex<HashMap<MessageId, usize>>,
    arrived: Notify,
}

impl Counting {
    fn total(&self) -> usize {
        self.delivered.lock().unwrap().values().sum()
    }

    async fn wait_for_total(&self, total: usize, patience: Duration) {
        tokio::time::timeout(patience, async {
            loop {
                let arrived = self.arrived.notified();
                if self.total() >= total {
                    return;
                }
                arrived.await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "only {} of {total} deliveries within {patience:?}",
                self.total()
            )
        });
    }
}

#[async_trait]
impl Dispatcher for Counting {
    fn method(&self) -> Method {
        Method::Webhook
    }

    async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        *self
            .delivered
            .lock()
            .unwrap()
            .entry(delivery.message_id)
            .or_default() += 1;
        self.arrived.notify_waiters();
        Ok(())
    }
}

/// Answers after `delay`, counting each delivery when it starts.
#[derive(Debug)]
struct Slow {
    counting: Arc<Counting>,
    delay: Duration,
}

#[async_trait]
impl Dispatcher for Slow {
    fn method(&self) -> Method {
        Method::Webhook
    }

    async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        self.counting.dispatch(delivery).await?;
        tokio::time::sleep(self.delay).await;
        Ok(())
    }
}

fn config() -> NotifierConfig {
    NotifierConfig {
        fetch_interval: Duration::from_secs(3600),
        store_sync_interval: Duration::from_millis(50),
        ..NotifierConfig::default()
    }
}

/// A replica's notifier, built by the composition root over its store and signals.
fn notifier(
    store: &PgStore,
    signals: &Arc<PgSignals>,
    clock: Arc<dyn Clock>,
    config: NotifierConfig,
    dispatcher: Arc<dyn Dispatcher>,
) -> Notifier {
    Services::build(
        Ports::over(
            Arc::new(store.clone()),
            signals.clone(),
            signals.clone(),
            clock,
            Arc::new(NoMetrics),
        ),
        Config {
            app_name: "Herald".to_owned(),
            access_url: "https://herald.example.com".to_owned(),
            app_url: None,
            default_method: DefaultMethod::Webhook,
            notifier: config.validate().unwrap(),
            unsubscribe_key: UnsubscribeKey::generate().unwrap(),
            limits: herald_application::Limits::default(),
        },
        vec![dispatcher],
    )
    .notifier("replica")
}

/// Stores `count` webhook messages spread over a few users (the notifier inhibits messages to
/// unknown recipients, so the users exist).
async fn queue_messages(
    store: &PgStore,
    count: usize,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<MessageId> {
    let mut users = Vec::new();
    for i in 0..10 {
        let user = sample::user(&format!("user-{i}"), &[]);
        store.upsert(&user).await.unwrap();
        users.push(user.id);
    }
    let batch: Vec<NewMessage> = (0..count)
        .map(|i| NewMessage {
            method: Method::Webhook,
            ..sample::new_message(users[i % users.len()], at)
        })
        .collect();
    store.enqueue(&batch).await.unwrap();
    batch.iter().map(|m| m.id).collect()
}

async fn statuses(store: &PgStore) -> HashMap<MessageStatus, usize> {
    let all = store
        .list(&MessageFilter {
            limit: 1_000_000,
            ..MessageFilter::default()
        })
        .await
        .unwrap();
    let mut counts = HashMap::new();
    for message in all {
        *counts.entry(message.status).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_notifiers_on_separate_pools_deliver_3000_messages_exactly_once() {
    let database = TestDatabase::create().await;
    let ids = queue_messages(&database.store, 3_000, SystemClock.now()).await;
    let delivered = Arc::new(Counting::default());

    let mut handles = Vec::new();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let store = database.replica().await;
        let signals = Arc::new(PgSignals::start(store.pool().clone()).await.unwrap());
        handles.push(
            notifier(
                &store,
                &signals,
                Arc::new(SystemClock),
                config(),
                delivered.clone(),
            )
            .spawn(),
        );
        replicas.push((store, signals));
    }
    delivered
        .wait_for_total(3_000, Duration::from_secs(120))
        .await;
    for handle in handles {
        handle.stop().await;
    }

    let counts = delivered.delivered.lock().unwrap().clone();
    assert_eq!(counts.len(), 3_000);
    assert!(
        ids.iter().all(|id| counts.get(id) == Some(&1)),
        "every message delivered exactly once"
    );
    assert_eq!(
        statuses(&database.store).await,
        HashMap::from([(MessageStatus::Sent, 3_000)])
    );
}

/// Hardening finding 1: a message leased while slots are busy waits in the backlog; by the
/// time a slot frees, less than the dispatch timeout is left on its lease. Dispatched so, the
/// other replica would take it over when the lease expires mid-dispatch and send it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_dispatches_never_outlive_their_lease_so_two_replicas_send_each_message_once() {
    let database = TestDatabase::create().await;
    // Each replica leases ten to dispatch and ten to wait behind them.
    let ids = queue_messages(&database.store, 40, SystemClock.now()).await;
    let delivered = Arc::new(Counting::default());
    let config = NotifierConfig {
        lease_period: Duration::from_secs(4),
        dispatch_timeout: Duration::from_secs(3),
        lease_count: 10,
        ..config()
    };

    let mut handles = Vec::new();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = database.replica().await;
        let signals = Arc::new(PgSignals::start(store.pool().clone()).await.unwrap());
        let slow = Arc::new(Slow {
            counting: delivered.clone(),
            delay: Duration::from_millis(2_500),
        });
        handles.push(
            notifier(
                &store,
                &signals,
                Arc::new(SystemClock),
                config.clone(),
                slow,
            )
            .spawn(),
        );
        replicas.push((store, signals));
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        while statuses(&database.store).await.get(&MessageStatus::Sent) != Some(&40) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("every message sent within a minute");
    for handle in handles {
        handle.stop().await;
    }

    let counts = delivered.delivered.lock().unwrap().clone();
    let twice: Vec<_> = counts.values().filter(|count| **count > 1).collect();
    assert!(
        twice.is_empty(),
        "{} messages sent more than once",
        twice.len()
    );
    assert!(ids.iter().all(|id| counts.get(id) == Some(&1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_notifiers_lease_is_taken_over_after_the_lease_period_without_counting_attempts() {
    let database = TestDatabase::create().await;
    let clock = ManualClock::default();
    let ids = queue_messages(&database.store, 5, clock.now()).await;

    // Replica A leases everything and dies: nothing is ever written back.
    let a = database.replica().await;
    let leased = a
        .lease(LeaseRequest {
            notifier: "tests".into(),
            now: clock.now(),
            lease_period: chrono::Duration::minutes(2),
            count: 20,
            max_attempts: 5,
            max_lease_expiries: 3,
            skip: herald_application::ports::SkipMethods::NONE,
        })
        .await
        .unwrap();
    assert_eq!(leased.len(), 5);
    drop(a);

    let b = database.replica().await;
    let signals = Arc::new(PgSignals::start(b.pool().clone()).await.unwrap());
    let delivered = Arc::new(Counting::default());
    let mut notifier_b = notifier(
        &b,
        &signals,
        Arc::new(clock.clone()),
        config(),
        delivered.clone(),
    );
    clock.advance(chrono::Duration::minutes(1));
    assert_eq!(
        notifier_b.run_cycle().await.unwrap(),
        Cycle::Dispatched(0),
        "A's lease still runs"
    );

    clock.advance(chrono::Duration::minutes(1) + chrono::Duration::seconds(1));
    assert_eq!(notifier_b.run_cycle().await.unwrap(), Cycle::Dispatched(5));
    notifier_b.flush().await;
    for id in ids {
        let message = b.get(id).await.unwrap().unwrap();
        assert_eq!(message.status, MessageStatus::Sent);
        assert_eq!(
            message.attempt_count, 1,
            "the expired lease was not counted"
        );
    }
    assert_eq!(delivered.total(), 5);
}

/// The backend pid of the LISTEN connection on `database` once there is one other than
/// `not`, polled until [`PATIENCE`] runs out.
async fn listener_pid(admin: &PgStore, database: &str, not: Option<i32>) -> i32 {
    within("a LISTEN connection", async {
        loop {
            let pid: Option<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity \
                 WHERE datname = $1 AND query ILIKE 'LISTEN%' AND pid IS DISTINCT FROM $2 LIMIT 1",
            )
            .bind(database)
            .bind(not)
            .fetch_optional(admin.pool())
            .await
            .unwrap();
            if let Some(pid) = pid {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
}

/// Enqueues one message, with no wake-up but the enqueue's own, and waits for the notifier
/// to deliver it.
async fn enqueue_and_wait_for_dispatch(store: &PgStore, delivered: &Counting, user: UserId) {
    let before = delivered.total();
    store
        .enqueue(&[NewMessage {
            method: Method::Webhook,
            ..sample::new_message(user, SystemClock.now())
        }])
        .await
        .unwrap();
    delivered.wait_for_total(before + 1, PATIENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_notifier_is_woken_by_the_enqueue_also_after_its_listener_was_killed() {
    let database = TestDatabase::create().await;
    let store = database.replica().await;
    let signals = Arc::new(PgSignals::start(store.pool().clone()).await.unwrap());
    let user = sample::user("waiting", &[]);
    store.upsert(&user).await.unwrap();
    let delivered = Arc::new(Counting::default());
    // Polls once an hour: within the test's patience only the wake-up brings a message.
    let handle = notifier(
        &store,
        &signals,
        Arc::new(SystemClock),
        config(),
        delivered.clone(),
    )
    .spawn();

    for _ in 0..3 {
        enqueue_and_wait_for_dispatch(&store, &delivered, user.id).await;
    }

    // Kill the LISTEN connection; the listener must reconnect by itself.
    let killed = listener_pid(&database.store, &database.name, None).await;
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(killed)
        .fetch_one(database.store.pool())
        .await
        .unwrap();
    assert!(terminated);
    listener_pid(&database.store, &database.name, Some(killed)).await;

    for _ in 0..3 {
        enqueue_and_wait_for_dispatch(&store, &delivered, user.id).await;
    }
    handle.stop().await;
}

/// Hardening finding 6: a LISTEN connection whose peer went silent (no reset) waited for
/// notifications forever, and an idle notifier was never woken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_notifier_is_woken_by_the_enqueue_also_after_its_listener_went_silent() {
    let database = TestDatabase::create().await;
    let store = database.replica().await;
    let link = Link::to(TestDatabase::server_address().await).await;
    let direct = database.store.pool().connect_options();
    let listening_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(
            direct
                .as_ref()
                .clone()
                .host("127.0.0.1")
                .port(link.address().port()),
        )
        .await
        .unwrap();
    let signals = Arc::new(
        PgSignals::start_with_heartbeat(
            listening_pool,
            Duration::from_millis(500),
            Duration::from_millis(500),
        )
        .await
        .unwrap(),
    );
    let user = sample::user("waiting", &[]);
    store.upsert(&user).await.unwrap();
    let delivered = Arc::new(Counting::default());
    // Polls once an hour: within the test's patience only the wake-up brings a message.
    let handle = notifier(
        &store,
        &signals,
        Arc::new(SystemClock),
        config(),
        delivered.clone(),
    )
    .spawn();
    enqueue_and_wait_for_dispatch(&store, &delivered, user.id).await;

    // The LISTEN connection's peer goes silent for good; new connections still get through.
    link.strand();
    for _ in 0..3 {
        enqueue_and_wait_for_dispatch(&store, &delivered, user.id).await;
    }
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_that_cannot_reach_the_database_loses_nothing() {
    let database = TestDatabase::create().await;
    let clock = ManualClock::default();
    let ids = queue_messages(&database.store, 3, clock.now()).await;

    let link = Link::to(TestDatabase::server_address().await).await;
    let flaky = pool_through(&database, &link).await;
    let signals = Arc::new(
        PgSignals::start(database.store.pool().clone())
            .await
            .unwrap(),
    );
    let delivered = Arc::new(Counting::default());
    let mut notifier_a = notifier(
        &flaky,
        &signals,
        Arc::new(clock.clone()),
        config(),
        delivered.clone(),
    );

    assert_eq!(notifier_a.run_cycle().await.unwrap(), Cycle::Dispatched(3));
    link.cut().await;
    let flushed = notifier_a.flush().await;
    assert_eq!(
        (flushed.sent, flushed.dropped),
        (0, 3),
        "the write-back failed"
    );
    link.restore();
    for id in &ids {
        assert_eq!(
            database.store.get(*id).await.unwrap().unwrap().status,
            MessageStatus::Leased
        );
    }

    // After the lease period another replica delivers them again: at least once, never lost.
    clock.advance(chrono::Duration::minutes(2) + chrono::Duration::seconds(1));
    let mut notifier_b = notifier(
        &database.store,
        &signals,
        Arc::new(clock.clone()),
        config(),
        delivered.clone(),
    );
    assert_eq!(notifier_b.run_cycle().await.unwrap(), Cycle::Dispatched(3));
    assert_eq!(notifier_b.flush().await.sent, 3);
    for id in &ids {
        assert_eq!(
            database.store.get(*id).await.unwrap().unwrap().status,
            MessageStatus::Sent
        );
        assert_eq!(delivered.delivered.lock().unwrap()[id], 2);
    }
}

/// A store of its own over two connections to the test database through `link`, set up as
/// `PgStore::connect` sets up production's (no ping before a connection is handed out, sqlx's
/// 30-second acquire timeout), so nothing but the notifier bounds a statement's wait.
async fn pool_through(database: &TestDatabase, link: &Link) -> PgStore {
    let direct = database.store.pool().connect_options();
    let through_link = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .test_before_acquire(false)
        .connect_with(
            direct
                .as_ref()
                .clone()
                .host("127.0.0.1")
                .port(link.address().port()),
        )
        .await
        .unwrap();
    PgStore::from_own_pool(through_link)
}

/// Hardening finding 6: a connection whose peer went silent (no reset, no answer) held the
/// notifier until TCP gave up, many minutes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_gone_silent_holds_the_notifier_no_longer_than_the_store_timeout() {
    let database = TestDatabase::create().await;
    let clock = ManualClock::default();
    let ids = queue_messages(&database.store, 3, clock.now()).await;
    let link = Link::to(TestDatabase::server_address().await).await;
    let flaky = pool_through(&database, &link).await;
    let signals = Arc::new(
        PgSignals::start(database.store.pool().clone())
            .await
            .unwrap(),
    );
    let delivered = Arc::new(Counting::default());
    let config = NotifierConfig {
        store_timeout: Duration::from_secs(1),
        ..config()
    };
    let mut notifier_a = notifier(
        &flaky,
        &signals,
        Arc::new(clock.clone()),
        config.clone(),
        delivered.clone(),
    );

    link.stall();
    let started = std::time::Instant::now();
    let cycle = tokio::time::timeout(Duration::from_secs(30), notifier_a.run_cycle())
        .await
        .expect("the notifier is held by a silent connection");
    assert!(
        matches!(
            cycle,
            Err(herald_application::ports::StoreError::Unavailable(_))
        ),
        "{cycle:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(delivered.total(), 0);

    // The network heals: the held lease may reach the server late, its messages then come
    // back when that lease expires; nothing is lost or sent twice.
    link.restore();
    clock.advance(chrono::Duration::minutes(2) + chrono::Duration::seconds(1));
    let mut notifier_b = notifier(
        &database.store,
        &signals,
        Arc::new(clock.clone()),
        config,
        delivered.clone(),
    );
    assert_eq!(notifier_b.run_cycle().await.unwrap(), Cycle::Dispatched(3));
    assert_eq!(notifier_b.flush().await.sent, 3);
    for id in &ids {
        assert_eq!(delivered.delivered.lock().unwrap()[id], 1);
    }
}

/// Hardening finding 6: a write-back the database refuses for a moment (a restart, a network
/// blip) is retried while its leases hold, instead of leaving its messages to be sent again
/// after the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_during_a_short_outage_is_retried_and_nothing_is_sent_twice() {
    let database = TestDatabase::create().await;
    let clock = ManualClock::default();
    let ids = queue_messages(&database.store, 3, clock.now()).await;
    let link = Link::to(TestDatabase::server_address().await).await;
    let flaky = pool_through(&database, &link).await;
    let signals = Arc::new(
        PgSignals::start(database.store.pool().clone())
            .await
            .unwrap(),
    );
    let delivered = Arc::new(Counting::default());
    let mut notifier_a = notifier(
        &flaky,
        &signals,
        Arc::new(clock.clone()),
        config(),
        delivered.clone(),
    );
    assert_eq!(notifier_a.run_cycle().await.unwrap(), Cycle::Dispatched(3));

    link.cut().await;
    let restoring = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        link.restore();
    };
    let (flushed, ()) = tokio::join!(notifier_a.flush(), restoring);
    assert_eq!((flushed.sent, flushed.dropped), (3, 0));

    clock.advance(chrono::Duration::minutes(2) + chrono::Duration::seconds(1));
    let mut notifier_b = notifier(
        &database.store,
        &signals,
        Arc::new(clock.clone()),
        config(),
        delivered.clone(),
    );
    assert_eq!(notifier_b.run_cycle().await.unwrap(), Cycle::Dispatched(0));
    for id in &ids {
        assert_eq!(
            database.store.get(*id).await.unwrap().unwrap().status,
            MessageStatus::Sent
        );
        assert_eq!(delivered.delivered.lock().unwrap()[id], 1);
    }
}

#[test]
fn without_a_url_a_throwaway_cluster_starts_from_the_installed_binaries_and_answers() {
    let url = herald_tests::local_cluster::start()
        .expect("the local PostgreSQL binaries start a cluster");
    assert!(url.starts_with("postgres://postgres@127.0.0.1:"), "{url}");
    // Asked again (another test process, a later run), it is the same running cluster.
    assert_eq!(herald_tests::local_cluster::start().unwrap(), url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer: i32 = runtime.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT 1")
            .fetch_one(&pool)
            .await
            .unwrap()
    });
    assert_eq!(answer, 1);
}

#[test]
fn the_test_server_is_the_url_given_else_docker_else_a_local_cluster_else_how_to_fix() {
    use herald_tests::postgres::choose_server;
    let never = || -> Option<Result<String, String>> { panic!("docker must not be tried") };
    let never_local =
        || -> Result<String, String> { panic!("the local cluster must not be tried") };
    let url = |u: &str| Ok::<_, String>(u.to_owned());

    assert_eq!(
        choose_server(Some("postgres://env".into()), never, never_local),
        url("postgres://env")
    );
    assert_eq!(
        choose_server(None, || Some(url("postgres://docker")), never_local),
        url("postgres://docker")
    );
    let broken_docker = choose_server(
        None,
        || Some(Err("the image is missing".into())),
        never_local,
    );
    assert!(
        broken_docker
            .unwrap_err()
            .contains("Docker engine answers, but the image is missing")
    );
    // No engine (the machines Herald is developed on): the local cluster.
    assert_eq!(
        choose_server(None, || None, || url("postgres://local")),
        url("postgres://local")
    );
    let nothing = choose_server(None, || None, || Err("no initdb".into())).unwrap_err();
    assert!(
        nothing.contains("HERALD_TEST_DATABASE_URL")
            && nothing.contains("apt-get install postgresql")
    );
    assert!(nothing.contains("no initdb"), "{nothing}");
}

/// DESIGN §10.3: the throttle is counted in the database, so two replicas leasing at the same
/// moment together send no recipient more than the limit in a window.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_leasing_at_once_send_no_recipient_more_than_the_throttle_allows() {
    let database = TestDatabase::create().await;
    let clock = ManualClock::default();
    // Ten users, six messages each.
    let ids = queue_messages(&database.store, 60, clock.now()).await;
    let delivered = Arc::new(Counting::default());
    let config = NotifierConfig {
        lease_count: 20,
        user_rate_limit: Some(
            herald_application::RateLimit::new(
                "notifier.user_rate_limit",
                3,
                Duration::from_secs(3_600),
            )
            .unwrap(),
        ),
        ..config()
    };
    let mut notifiers = Vec::new();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = database.replica().await;
        let signals = Arc::new(PgSignals::start(store.pool().clone()).await.unwrap());
        notifiers.push(notifier(
            &store,
            &signals,
            Arc::new(clock.clone()),
            config.clone(),
            delivered.clone(),
        ));
        replicas.push((store, signals));
    }
    let [mut first, mut second] = <[Notifier; 2]>::try_from(notifiers).unwrap();

    // Both lease at once, again and again, until neither finds anything more.
    loop {
        let (a, b) = tokio::join!(first.run_cycle(), second.run_cycle());
        if (a.unwrap(), b.unwrap()) == (Cycle::Dispatched(0), Cycle::Dispatched(0)) {
            break;
        }
    }
    first.flush().await;
    second.flush().await;

    let counts = delivered.delivered.lock().unwrap().clone();
    assert_eq!(counts.len(), 30, "three for each of ten users");
    let mut per_user: HashMap<UserId, usize> = HashMap::new();
    for id in counts.keys() {
        let message = database.store.get(*id).await.unwrap().unwrap();
        *per_user.entry(message.recipient).or_default() += 1;
    }
    assert!(per_user.values().all(|n| *n == 3), "{per_user:?}");
    assert_eq!(
        statuses(&database.store).await,
        HashMap::from([(MessageStatus::Sent, 30), (MessageStatus::Pending, 30)])
    );
    let waiting = ids.iter().filter(|id| !counts.contains_key(id)).count();
    assert_eq!(waiting, 30);
}

/// DESIGN §10.3: digests opened and filled on two replicas are closed by the lease like any
/// due message, so two notifiers reaching a window's close send each digest once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_closing_the_same_digest_windows_send_each_digest_once() {
    let database = TestDatabase::create().await;
    let clock = ManualClock::default();
    let window = chrono::Duration::hours(1);
    let (a, b) = (database.replica().await, database.replica().await);
    let mut digests = std::collections::BTreeSet::new();
    for i in 0..5 {
        let user = sample::user(&format!("digest-user-{i}"), &[]);
        a.upsert(&user).await.unwrap();
        for (n, store) in [&a, &b, &a].into_iter().enumerate() {
            let mut row = NewMessage {
                method: Method::Webhook,
                ..sample::new_message(user.id, clock.now())
            };
            let labels = herald_domain::Labels::from([("name".to_owned(), format!("ws-{n}"))]);
            row.payload.data = Some(herald_domain::digest::data(vec![
                herald_domain::digest::item(&labels, None),
            ]));
            row.send_after = Some(clock.now() + window);
            row.digest = true;
            match store.enqueue(&[row]).await.unwrap()[..] {
                [herald_application::ports::EnqueueOutcome::Queued(id)] => digests.insert(id),
                ref other => panic!("not queued: {other:?}"),
            };
        }
    }
    assert_eq!(digests.len(), 5, "one digest per recipient");
    let delivered = Arc::new(Counting::default());
    let mut notifiers = Vec::new();
    let mut signals_kept = Vec::new();
    for store in [&a, &b] {
        let signals = Arc::new(PgSignals::start(store.pool().clone()).await.unwrap());
        notifiers.push(notifier(
            store,
            &signals,
            Arc::new(clock.clone()),
            config(),
            delivered.clone(),
        ));
        signals_kept.push(signals);
    }
    let [mut first, mut second] = <[Notifier; 2]>::try_from(notifiers).unwrap();
    assert_eq!(
        first.run_cycle().await.unwrap(),
        Cycle::Dispatched(0),
        "windows open"
    );

    clock.advance(window);
    let (one, two) = tokio::join!(first.run_cycle(), second.run_cycle());
    first.flush().await;
    second.flush().await;

    let dispatched = [one.unwrap(), two.unwrap()];
    let total: usize = dispatched
        .iter()
        .map(|cycle| match cycle {
            Cycle::Dispatched(n) => *n,
            other => panic!("{other:?}"),
        })
        .sum();
    assert_eq!(total, 5, "{dispatched:?}");
    let counts = delivered.delivered.lock().unwrap().clone();
    assert!(
        digests.iter().all(|id| counts.get(id) == Some(&1)),
        "{counts:?}"
    );
    for id in &digests {
        let message = a.get(*id).await.unwrap().unwrap();
        assert_eq!(message.status, MessageStatus::Sent);
        assert_eq!(
            herald_domain::digest::items(message.payload.data.as_ref()).len(),
            3
        );
    }
}

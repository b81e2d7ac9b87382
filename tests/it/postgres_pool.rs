//! `PgStore::connect`'s own pool: the session settings a standalone server runs with, and the
//! connections a store keeps between statements.

use herald_application::ports::StoreError;
use herald_postgres::PgStore;
use herald_tests::postgres::TestDatabase;

#[tokio::test]
async fn the_stores_own_sessions_run_with_generic_plans() {
    let database = TestDatabase::create().await;
    let store = PgStore::connect(&database.url()).await.unwrap();

    let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();

    assert_eq!(mode, "force_generic_plan");
}

/// Waits until `pool` holds `idle` idle connections: a connection handed back gets there
/// through a task of sqlx's, a moment after the statement that used it ended.
async fn until_idle_in(pool: &sqlx::PgPool, idle: usize) {
    herald_tests::fixture::within("the connections handed back reaching the pool", async {
        while pool.num_idle() != idle {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn pool_of(database: &TestDatabase, size: u32) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(size)
        .connect_with(database.store.pool().connect_options().as_ref().clone())
        .await
        .unwrap()
}

/// Five of the store's kept-connection statements, one after another.
async fn five_statements(store: &PgStore) {
    use herald_application::ports::SettingsStore;
    for _ in 0..5 {
        assert!(!store.notifier_paused().await.unwrap());
    }
}

#[tokio::test]
async fn a_store_keeps_its_connection_between_statements_instead_of_handing_it_back() {
    let database = TestDatabase::create().await;
    let own = pool_of(&database, 4).await;
    let store = PgStore::from_own_pool(own.clone());

    five_statements(&store).await;

    assert_eq!(own.size(), 1, "one connection served every statement");
    assert_eq!(store.kept_connections(), 1, "the store kept it");
    assert_eq!(own.num_idle(), 0);
}

#[tokio::test]
async fn a_store_over_a_hosts_pool_hands_each_connection_back() {
    let database = TestDatabase::create().await;
    let hosts = pool_of(&database, 4).await;
    let store = PgStore::from_pool(hosts.clone());

    five_statements(&store).await;

    // Every connection the statements used is back (one, or more when a statement found the
    // previous one still on its way back).
    let opened = hosts.size() as usize;
    assert!(opened >= 1);
    assert_eq!(store.kept_connections(), 0, "none kept");
    until_idle_in(&hosts, opened).await;
}

#[tokio::test]
async fn a_store_keeps_at_most_half_its_pool_so_other_statements_find_room() {
    use herald_application::ports::SettingsStore;
    let database = TestDatabase::create().await;
    let own = pool_of(&database, 4).await;
    let store = PgStore::from_own_pool(own.clone());

    // Four statements at once take all four connections (each waits on a lock held elsewhere
    // until all four are waiting, so none can finish and hand its connection to another);
    // two are kept afterwards.
    let mut blocker = database.store.pool().begin().await.unwrap();
    sqlx::query("LOCK TABLE settings IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let release = async {
        for _ in 0..2_000 {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks \
                 WHERE relation = 'settings'::regclass AND NOT granted",
            )
            .fetch_one(&mut *blocker)
            .await
            .unwrap();
            if waiting == 4 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        blocker.commit().await.unwrap();
    };
    let ((a, b, c, d), ()) = tokio::join!(
        async {
            tokio::join!(
                store.notifier_paused(),
                store.notifier_paused(),
                store.notifier_paused(),
                store.notifier_paused()
            )
        },
        release
    );
    for paused in [a, b, c, d] {
        assert!(!paused.unwrap());
    }

    assert_eq!(own.size(), 4);
    assert_eq!(store.kept_connections(), 2, "two kept");
    until_idle_in(&own, 2).await;
    // The two left in the pool serve statements that go to the pool directly.
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&own)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[tokio::test]
async fn closing_a_store_hands_its_kept_connections_back_and_closes_the_pool() {
    use herald_application::ports::SettingsStore;
    let database = TestDatabase::create().await;
    let own = pool_of(&database, 4).await;
    let store = PgStore::from_own_pool(own.clone());
    assert!(!store.notifier_paused().await.unwrap());

    tokio::time::timeout(std::time::Duration::from_secs(10), store.close())
        .await
        .expect("the pool closed; it would wait for ever for a connection still kept");

    assert!(own.is_closed());
    assert_eq!(own.size(), 0);
    assert!(
        store.notifier_paused().await.is_err(),
        "nothing is kept after"
    );
}

#[tokio::test]
async fn a_kept_connection_the_server_ended_fails_one_statement_and_is_replaced() {
    use herald_application::ports::SettingsStore;
    use sqlx::Connection as _;
    let database = TestDatabase::create().await;
    let own = pool_of(&database, 4).await;
    let store = PgStore::from_own_pool(own.clone());
    assert!(!store.notifier_paused().await.unwrap());

    let mut admin =
        sqlx::PgConnection::connect_with(database.store.pool().connect_options().as_ref())
            .await
            .unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ended.is_empty());

    let first = store.notifier_paused().await;
    assert!(
        matches!(first, Err(StoreError::Unavailable(_))),
        "the kept connection was ended: {first:?}"
    );
    assert!(
        !store.notifier_paused().await.unwrap(),
        "a new one serves the next"
    );
}

#[test]
fn a_store_dropped_after_its_runtime_closes_its_kept_connections_without_a_panic() {
    use herald_application::ports::SettingsStore;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (database, store) = runtime.block_on(async {
        let database = TestDatabase::create().await;
        let store = PgStore::from_own_pool(pool_of(&database, 4).await);
        assert!(!store.notifier_paused().await.unwrap());
        (database, store)
    });
    drop(runtime);

    drop(store);
    drop(database);
}

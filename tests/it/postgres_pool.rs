//! `PgStore::connect`'s own pool: the session settings a standalone server runs with.

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

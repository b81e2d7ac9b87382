//! `herald migrate` and `herald server` against a fresh database on the test server
//! ([`crate::support::server_url`]; the tests fail, never skip, when there is none).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

use crate::support::{self, Process, TestDatabase};

const TABLES: &[&str] = &[
    "users",
    "templates",
    "preferences",
    "messages",
    "inbox_notifications",
    "settings",
    "api_tokens",
];

async fn tables(url: &str) -> Vec<String> {
    let mut connection = PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    connection.close().await.ok();
    tables
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_creates_the_schema_and_prints_one_confirmation_line() {
    let db = TestDatabase::create().await;
    let url = db.url_with_password("pg-secret-value");

    let (status, stdout, stderr) = support::run(&["migrate", "--postgres-url", &url], &[]);

    assert!(status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("migrations applied to postgres://"),
        "{stdout}"
    );
    assert!(!format!("{stdout}{stderr}").contains("pg-secret-value"));
    let found = tables(&db.url).await;
    for table in TABLES {
        assert!(
            found.iter().any(|t| t == table),
            "{table} missing: {found:?}"
        );
    }

    // Applying them again is a no-op.
    let (status, _, stderr) = support::run(&["migrate", "--postgres-url", &db.url], &[]);
    assert!(status.success(), "{stderr}");
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_against_an_unreachable_database_fails_in_one_line() {
    let (status, _, stderr) = support::run(
        &[
            "migrate",
            "--postgres-url",
            "postgres://herald:pg-secret-value@127.0.0.1:1/herald",
        ],
        &[],
    );

    assert!(!status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "herald: connecting to the database at postgres://herald:***@127.0.0.1:1/herald"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("pg-secret-value"));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_starts_logs_and_stops_cleanly_on_sigterm() {
    let db = TestDatabase::create().await;
    let data_dir = support::temp_dir("herald-server-test");
    let url = db.url_with_password("pg-secret-value");
    let mut server = Process::spawn(&[
        "server",
        "--postgres-url",
        &url,
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--log-filter",
        "info",
    ]);

    server.wait_for_line("notifier started", Duration::from_secs(30));
    server.wait_for_line("herald server started", Duration::from_secs(5));
    server.signal("TERM");
    let (status, took) = server.wait_for_exit(Duration::from_secs(10));

    let log = server.log.join("\n");
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("notifier stopped"), "{log}");
    assert!(log.contains("herald stopped"), "{log}");
    assert!(
        !log.contains("pg-secret-value"),
        "the log shows the password:\n{log}"
    );
    assert!(data_dir.join(herald::UNSUBSCRIBE_KEY_FILE).is_file());
    // Started means migrated and seeded.
    let found = tables(&db.url).await;
    assert!(found.iter().any(|t| t == "messages"), "{found:?}");

    std::fs::remove_dir_all(&data_dir).ok();
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_stops_on_sigint_too() {
    let db = TestDatabase::create().await;
    let data_dir = support::temp_dir("herald-server-test");
    let mut server = Process::spawn(&[
        "server",
        "--postgres-url",
        &db.url,
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);

    server.wait_for_line("herald server started", Duration::from_secs(30));
    server.signal("INT");
    let (status, _) = server.wait_for_exit(Duration::from_secs(10));

    assert!(status.success(), "log:\n{}", server.log.join("\n"));
    std::fs::remove_dir_all(&data_dir).ok();
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_database_is_created_on_the_test_server_and_dropped() {
    let db = TestDatabase::create().await;
    let name = db.name.clone();
    let mut connection = PgConnection::connect(&db.url).await.unwrap();
    let current: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    connection.close().await.ok();
    assert_eq!(current, name);

    db.drop_now().await;
    let mut admin = PgConnection::connect(&support::server_url()).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    assert_eq!(left, 0, "{name} is still there");
}

/// The bootstrap tests find their server as `herald-tests` does (DESIGN §9), not from the
/// environment only: this test binary, run again without `HERALD_TEST_DATABASE_URL`, still
/// creates a database (on a container or the local cluster).
#[test]
fn without_the_environment_url_the_tests_fall_back_to_a_container_or_the_local_cluster() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "database::a_test_database_is_created_on_the_test_server_and_dropped",
            "--exact",
        ])
        .env_remove(herald_tests::postgres::DATABASE_URL_VAR)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "stdout:\n{stdout}");
}

//! The built-in database: without `--postgres-url`, a private PostgreSQL cluster in the data
//! directory, created on first start and reused afterwards (run as the `postgres` user when
//! the tests run as root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

use crate::example;
use crate::support::{self, Process};

#[test]
fn server_without_a_postgres_url_runs_a_builtin_cluster_and_reuses_it() {
    let data_dir = support::temp_dir("herald-builtin-test");
    let dir = data_dir.to_str().unwrap();

    let mut first = Process::spawn(&["server", "--data-dir", dir]);
    first.wait_for_line("herald server started", Duration::from_secs(60));
    first.signal("TERM");
    let (status, _) = first.wait_for_exit(Duration::from_secs(30));
    let log = first.log.join("\n");
    assert!(status.success(), "log:\n{log}");
    assert!(log.contains("built-in PostgreSQL cluster created"), "{log}");
    assert!(log.contains("built-in PostgreSQL stopped"), "{log}");
    assert!(data_dir.join("postgres/data/PG_VERSION").is_file());
    assert!(
        !data_dir.join("postgres/data/postmaster.pid").exists(),
        "the cluster is still running"
    );

    let mut second = Process::spawn(&["server", "--data-dir", dir]);
    second.wait_for_line("herald server started", Duration::from_secs(60));
    second.signal("TERM");
    let (status, _) = second.wait_for_exit(Duration::from_secs(30));
    let log = second.log.join("\n");
    assert!(status.success(), "log:\n{log}");
    assert!(
        !log.contains("cluster created"),
        "the cluster was not reused:\n{log}"
    );
    assert!(log.contains("built-in PostgreSQL stopped"), "{log}");

    std::fs::remove_dir_all(&data_dir).ok();
}

/// The API's address, from the line a server logs when it listens.
fn api_of(process: &Process) -> String {
    let line = process
        .log
        .iter()
        .find(|line| line.contains("HTTP API listening on http://"))
        .unwrap();
    let address = line.split("http://").nth(1).unwrap().split('/').next();
    format!("http://{}", address.unwrap())
}

/// Starts `herald server` on the built-in cluster in `dir` at `port`, checks that Herald works
/// (`/readyz` reads the database) while a connection without the password is refused, stops
/// it; returns its log.
async fn serve_and_knock(dir: &str, port: u16) -> String {
    let port_arg = port.to_string();
    let mut server = Process::spawn(&[
        "server",
        "--data-dir",
        dir,
        "--builtin-postgres-port",
        &port_arg,
    ]);
    server.wait_for_line("HTTP API listening on", Duration::from_secs(60));

    let _ = rustls::crypto::ring::default_provider().install_default();
    let ready = reqwest::get(format!("{}/readyz", api_of(&server)))
        .await
        .map(|answer| answer.status().as_u16());
    let passwordless =
        PgConnection::connect(&format!("postgres://postgres@127.0.0.1:{port}/herald")).await;

    server.signal("TERM");
    let (status, _) = server.wait_for_exit(Duration::from_secs(30));
    let log = server.log.join("\n");
    assert!(status.success(), "log:\n{log}");
    assert_eq!(ready.ok(), Some(200), "herald works on its cluster:\n{log}");
    match passwordless {
        Ok(_) => panic!("a connection without the password got into the built-in cluster"),
        Err(err) => assert!(err.to_string().contains("password"), "{err}"),
    }
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn only_herald_gets_into_the_builtin_cluster_even_one_made_when_it_trusted_local_users() {
    let data_dir = support::temp_dir("herald-builtin-password");
    let dir = data_dir.to_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    serve_and_knock(dir, port).await;

    // As a cluster made by a Herald that trusted every local connection: no password file,
    // and pg_hba.conf trusting the socket and loopback.
    let cluster = data_dir.join("postgres");
    std::fs::remove_file(cluster.join("password")).ok();
    std::fs::write(
        cluster.join("data/pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n",
    )
    .unwrap();

    let log = serve_and_knock(dir, port).await;
    assert!(log.contains("now need the password"), "{log}");
    std::fs::remove_dir_all(&data_dir).ok();
}

#[test]
fn migrate_without_a_postgres_url_migrates_the_builtin_cluster() {
    let data_dir = support::temp_dir("herald-builtin-migrate");

    let (status, stdout, stderr) =
        support::run(&["migrate", "--data-dir", data_dir.to_str().unwrap()], &[]);

    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("migrations applied to the built-in database"),
        "{stdout}"
    );
    assert!(!data_dir.join("postgres/data/postmaster.pid").exists());
    std::fs::remove_dir_all(&data_dir).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_example_runs_on_the_builtin_cluster() {
    let data_dir = support::temp_dir("herald-builtin-embedded");

    let notification = example::run(None, &data_dir).await;

    assert!(
        !data_dir.join("postgres/data/postmaster.pid").exists(),
        "shutdown left the cluster running"
    );
    std::fs::remove_dir_all(&data_dir).ok();
    assert!(!notification.unwrap().title.is_empty());
}

#[test]
fn one_herald_at_a_time_runs_a_data_directory_and_a_killed_ones_cluster_is_recovered() {
    let data_dir = support::temp_dir("herald-builtin-lock");
    let dir = data_dir.to_str().unwrap();
    let mut first = Process::spawn(&["server", "--data-dir", dir]);
    first.wait_for_line("herald server started", Duration::from_secs(60));

    let (status, _, stderr) = support::run(&["server", "--data-dir", dir], &[]);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(!status.success());
    assert!(
        last.starts_with("herald: another herald is running the built-in PostgreSQL"),
        "{stderr}"
    );

    // Killed outright: its cluster keeps running, and the next herald takes it over.
    first.signal("KILL");
    first.wait_for_exit(Duration::from_secs(10));
    assert!(data_dir.join("postgres/data/postmaster.pid").exists());
    let mut second = Process::spawn(&["server", "--data-dir", dir]);
    second.wait_for_line("herald server started", Duration::from_secs(60));
    second.signal("TERM");
    let (status, _) = second.wait_for_exit(Duration::from_secs(30));
    let log = second.log.join("\n");
    assert!(status.success(), "log:\n{log}");
    assert!(log.contains("left running by a previous herald"), "{log}");
    assert!(!data_dir.join("postgres/data/postmaster.pid").exists());

    std::fs::remove_dir_all(&data_dir).ok();
}

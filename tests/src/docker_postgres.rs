//! PostgreSQL in a Docker container, when a Docker engine answers (DESIGN §9's second choice,
//! after `HERALD_TEST_DATABASE_URL`), through testcontainers.
//!
//! One container, `herald-test-postgres-<uid>`, serves every test process and every run:
//! nextest runs each test in a process of its own, and a container per process would cost
//! seconds per test. testcontainers' reusable containers give that: a container asked for
//! with [`ReuseDirective::Always`] and a fixed name is found again by the next process and is
//! not removed when its handle drops. A file lock serialises the set-up between processes, so
//! two of them never race to create it. Remove it with `docker rm -f herald-test-postgres-<uid>`.
//!
//! Whether an engine answers is asked once, with a deadline ([`ENGINE_DEADLINE`]): where no
//! engine runs, the tests fall through to the local cluster at once instead of waiting on a
//! socket.

use std::future::Future;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;
use testcontainers::core::client::docker_client_instance;
use testcontainers::core::{IntoContainerPort as _, WaitFor};
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{GenericImage, ImageExt as _, ReuseDirective};

const IMAGE: &str = "postgres";
const TAG: &str = "15";

/// How long the engine may take to answer a ping before the tests go on without it.
pub const ENGINE_DEADLINE: Duration = Duration::from_secs(5);

/// How long the container may take to be created (the image pulled, if need be) and to accept
/// connections.
const START_DEADLINE: Duration = Duration::from_secs(180);

/// `None` when no Docker engine answers within [`ENGINE_DEADLINE`] (the caller falls back);
/// else the admin URL of the running container, or why it could not be started.
pub fn start() -> Option<Result<String, String>> {
    // The caller may be inside a test's runtime: the container is set up on a thread and
    // runtime of its own.
    let setting_up = std::thread::spawn(|| {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => return Some(Err(format!("cannot start a runtime: {err}"))),
        };
        runtime.block_on(async {
            if !answers_within(engine_answers(), ENGINE_DEADLINE).await {
                return None;
            }
            Some(start_container().await)
        })
    });
    setting_up
        .join()
        .unwrap_or_else(|_| Some(Err("setting up the container panicked".to_owned())))
}

/// Whether `probe` says yes before `deadline`; a probe still pending then counts as no.
pub async fn answers_within(probe: impl Future<Output = bool>, deadline: Duration) -> bool {
    tokio::time::timeout(deadline, probe).await.unwrap_or(false)
}

/// Whether the engine testcontainers is configured for (`DOCKER_HOST`, the default socket)
/// answers a ping: a client library or a socket file alone is not enough.
async fn engine_answers() -> bool {
    match docker_client_instance().await {
        Ok(docker) => docker.ping().await.is_ok(),
        Err(_) => false,
    }
}

async fn start_container() -> Result<String, String> {
    let name = format!("herald-test-postgres-{}", crate::local_cluster::user_id());
    let lock_path = std::env::temp_dir().join(format!("{name}.lock"));
    // Another process may be pulling the image and starting the container.
    let lock = crate::local_cluster::lock_within(&lock_path, START_DEADLINE * 2)?;

    let request = GenericImage::new(IMAGE, TAG)
        .with_exposed_port(5432.tcp())
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
        .with_cmd([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "max_connections=300",
        ])
        .with_container_name(&name)
        .with_reuse(ReuseDirective::Always)
        .with_startup_timeout(START_DEADLINE);
    let container = request
        .start()
        .await
        .map_err(|err| format!("cannot start the container {name}: {err}"))?;
    let host = container
        .get_host()
        .await
        .map_err(|err| format!("cannot tell where the container {name} listens: {err}"))?;
    let port = container
        .get_host_port_ipv4(5432.tcp())
        .await
        .map_err(|err| format!("the container {name} publishes no port: {err}"))?;
    let url = format!("postgres://postgres@{host}:{port}/postgres");
    wait_until_ready(&name, &url).await?;
    drop(lock);
    Ok(url)
}

/// The image restarts the server once after initialising, and a container found again was
/// not waited for: ready means a connection succeeds.
async fn wait_until_ready(name: &str, url: &str) -> Result<(), String> {
    let ready = async {
        loop {
            match PgConnection::connect(url).await {
                Ok(connection) => {
                    let _ = connection.close().await;
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    };
    tokio::time::timeout(START_DEADLINE, ready)
        .await
        .map_err(|_| {
            format!(
                "the container {name} did not accept connections within {}s",
                START_DEADLINE.as_secs()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_engine_that_never_answers_counts_as_none_once_the_deadline_passes() {
        let asking = answers_within(std::future::pending(), Duration::from_millis(200));
        let answered = tokio::time::timeout(Duration::from_secs(10), asking)
            .await
            .unwrap_or_else(|_| panic!("still waiting for an engine that never answers"));
        assert!(!answered);
    }

    #[tokio::test]
    async fn an_engine_that_answers_in_time_counts_and_one_that_refuses_does_not() {
        assert!(answers_within(async { true }, Duration::from_secs(5)).await);
        assert!(!answers_within(async { false }, Duration::from_secs(5)).await);
    }
}

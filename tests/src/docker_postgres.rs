//! PostgreSQL in a Docker container, when a Docker engine answers (DESIGN §9's second choice,
//! after `HERALD_TEST_DATABASE_URL`).
//!
//! One container, `herald-test-postgres-<uid>`, serves every test process and every run: nextest
//! runs each test in a process of its own, and a container per process would cost seconds per
//! test. It is driven through the `docker` CLI rather than the testcontainers crate for that
//! reason (testcontainers removes its containers when the handle drops, i.e. per process), and
//! to keep a heavy dependency tree out of the build. A file lock serialises the set-up. Remove it
//! with `docker rm -f herald-test-postgres-<uid>`.

use std::fs::File;
use std::process::Command;
use std::time::{Duration, Instant};

const IMAGE: &str = "postgres:15";

/// `None` when no Docker engine answers (the caller falls back); else the admin URL of the
/// running container, or why it could not be started.
pub fn start() -> Option<Result<String, String>> {
    if !engine_answers() {
        return None;
    }
    Some(start_container())
}

/// Whether `docker info` reaches an engine (a client alone is not enough).
pub fn engine_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|out| out.status.success() && !out.stdout.trim_ascii().is_empty())
}

fn start_container() -> Result<String, String> {
    let name = format!("herald-test-postgres-{}", crate::local_cluster::user_id());
    let lock_path = std::env::temp_dir().join(format!("{name}.lock"));
    let lock = File::create(&lock_path)
        .map_err(|err| format!("cannot create {}: {err}", lock_path.display()))?;
    lock.lock()
        .map_err(|err| format!("cannot lock {}: {err}", lock_path.display()))?;

    if port_of(&name).is_none() {
        // A stopped container of that name is replaced.
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        let output = Command::new("docker")
            .args([
                "run",
                "-d",
                "--name",
                &name,
                "-e",
                "POSTGRES_HOST_AUTH_METHOD=trust",
            ])
            .args(["-p", "127.0.0.1::5432", IMAGE])
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "max_connections=300",
            ])
            .output()
            .map_err(|err| format!("cannot run docker: {err}"))?;
        if !output.status.success() {
            return Err(format!(
                "docker run {IMAGE} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    let port = port_of(&name).ok_or_else(|| format!("container {name} publishes no port"))?;
    wait_until_ready(&name)?;
    drop(lock);
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// The host port a running container publishes for 5432.
fn port_of(name: &str) -> Option<u16> {
    let output = Command::new("docker")
        .args(["port", name, "5432/tcp"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.rsplit(':').next()?.trim().parse().ok())
}

/// The image restarts the server once after initialising; ready means `pg_isready` answers
/// inside the container after that.
fn wait_until_ready(name: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ready = Command::new("docker")
            .args([
                "exec",
                name,
                "pg_isready",
                "-U",
                "postgres",
                "-h",
                "127.0.0.1",
            ])
            .output()
            .is_ok_and(|out| out.status.success());
        if ready {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!("container {name} did not become ready within 60 s"))
}

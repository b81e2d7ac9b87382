//! A throwaway PostgreSQL cluster from the locally installed binaries (DESIGN §9's fallback
//! when no `HERALD_TEST_DATABASE_URL` is given): `initdb` once into a per-user directory under
//! the system temp dir, started on a free port on 127.0.0.1 and left running, so every test
//! process (nextest runs one per test) and every later run reuses it. A file lock serialises
//! the set-up between concurrent test processes.
//!
//! PostgreSQL refuses to run as root; as root the cluster runs as the `postgres` user (via
//! `runuser`). Durability is switched off (`fsync`, `synchronous_commit`, `full_page_writes`):
//! these are test databases. Stop it with `pg_ctl stop -D <dir>/data` (the directory is named
//! in the error and log lines below).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The user a root test process runs the cluster as.
const UNPRIVILEGED_USER: &str = "postgres";

/// Finds or starts the cluster; returns an admin URL for it.
///
/// # Errors
/// A sentence saying what is missing or what failed (no PostgreSQL binaries, initdb or start
/// failed — with the log's path).
pub fn start() -> Result<String, String> {
    let bin = binaries().ok_or_else(|| {
        "no PostgreSQL binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin"
            .to_owned()
    })?;
    let as_root = is_root();
    let base = std::env::temp_dir().join(format!("herald-test-postgres-{}", user_id()));
    fs::create_dir_all(&base).map_err(|err| format!("cannot create {}: {err}", base.display()))?;
    let lock = File::create(base.join("lock"))
        .map_err(|err| format!("cannot create the lock in {}: {err}", base.display()))?;
    lock.lock()
        .map_err(|err| format!("cannot lock {}: {err}", base.display()))?;
    if as_root {
        run(
            Command::new("chown")
                .args(["-R", UNPRIVILEGED_USER])
                .arg(&base),
            "chown",
        )?;
    }

    let data = base.join("data");
    if !data.join("PG_VERSION").exists() {
        let mut initdb = pg_command(&bin, "initdb", as_root);
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        ]);
        run(&mut initdb, "initdb")?;
    }
    let port = port(&base)?;
    let mut status = pg_command(&bin, "pg_ctl", as_root);
    status.arg("status").arg("-D").arg(&data);
    let running = status.output().is_ok_and(|out| out.status.success());
    if !running {
        let log = base.join("postgres.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            base.display()
        );
        let mut start = pg_command(&bin, "pg_ctl", as_root);
        start
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &options]);
        run(&mut start, "pg_ctl start").map_err(|err| format!("{err} (see {})", log.display()))?;
    }
    drop(lock);
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// The cluster's port: chosen free once, then kept in `<base>/port`.
fn port(base: &Path) -> Result<u16, String> {
    let file = base.join("port");
    if let Some(port) = fs::read_to_string(&file)
        .ok()
        .and_then(|text| text.trim().parse().ok())
    {
        return Ok(port);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|err| format!("cannot find a free port: {err}"))?
        .port();
    fs::write(&file, port.to_string())
        .map_err(|err| format!("cannot write {}: {err}", file.display()))?;
    Ok(port)
}

fn pg_command(bin: &Path, program: &str, as_root: bool) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command
            .args(["-u", UNPRIVILEGED_USER, "--"])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|err| format!("cannot run {what}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The directory holding `initdb` and `pg_ctl`: on PATH, else the newest Debian install.
fn binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

/// The numeric id of the user running the tests (names per-user directories and containers).
pub fn user_id() -> String {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn is_root() -> bool {
    user_id() == "0"
}

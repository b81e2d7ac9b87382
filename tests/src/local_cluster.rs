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

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The user a root test process runs the cluster as.
pub const UNPRIVILEGED_USER: &str = "postgres";

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
    let lock = lock_within(&base.join("lock"), SET_UP_DEADLINE)?;
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
    let mut status = pg_command(&bin, "pg_ctl", as_root);
    status.arg("status").arg("-D").arg(&data);
    let running = status.output().is_ok_and(|out| out.status.success());
    let mut port = pick_port(&base)?;
    if !running {
        let log = base.join("postgres.log");
        // The port was free when chosen, but something may have taken it since: then a new
        // one is chosen.
        let mut tries = 0;
        loop {
            let logged = fs::metadata(&log).map_or(0, |meta| meta.len());
            match start_server(&bin, as_root, &base, port) {
                Ok(()) => break,
                Err(_) if tries < PORT_TRIES && port_was_taken(&log, logged) => {
                    tries += 1;
                    let _ = fs::remove_file(base.join("port"));
                    port = pick_port(&base)?;
                }
                Err(err) => return Err(format!("{err} (see {})", log.display())),
            }
        }
    }
    drop(lock);
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// Starts the server of the cluster in `<base>/data` on `port`, waiting until it accepts
/// connections (at most 60 s).
fn start_server(bin: &Path, as_root: bool, base: &Path, port: u16) -> Result<(), String> {
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300",
        base.display()
    );
    let mut start = pg_command(bin, "pg_ctl", as_root);
    start
        .args(["start", "-w", "-t", "60", "-D"])
        .arg(base.join("data"))
        .arg("-l")
        .arg(base.join("postgres.log"))
        .args(["-o", &options]);
    run(&mut start, "pg_ctl start")
}

/// How long a test process waits for another one setting the cluster up (`initdb`, then at
/// most 60 s for the server to start).
const SET_UP_DEADLINE: Duration = Duration::from_secs(180);

/// Takes the lock file at `path`, waiting at most `deadline` for the test process holding it.
///
/// # Errors
/// When it cannot be created or locked, or stays locked past `deadline`, saying so.
pub fn lock_within(path: &Path, deadline: Duration) -> Result<File, String> {
    let file =
        File::create(path).map_err(|err| format!("cannot create {}: {err}", path.display()))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if started.elapsed() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(format!(
                    "{} stayed locked for {}s: another test process is setting up the test \
                     server, or hangs doing so",
                    path.display(),
                    deadline.as_secs()
                ));
            }
            Err(TryLockError::Error(err)) => {
                return Err(format!("cannot lock {}: {err}", path.display()));
            }
        }
    }
}

/// How many other ports are tried when the chosen one was taken.
const PORT_TRIES: usize = 3;

/// Whether the server's log, past its first `logged` bytes, says the port was in use.
fn port_was_taken(log: &Path, logged: u64) -> bool {
    let Ok(text) = fs::read(log) else {
        return false;
    };
    let written = usize::try_from(logged).unwrap_or(usize::MAX);
    text.get(written..)
        .is_some_and(|new| String::from_utf8_lossy(new).contains("Address already in use"))
}

/// The cluster's port: chosen free once, then kept in `<base>/port`.
fn pick_port(base: &Path) -> Result<u16, String> {
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

/// `program` of the PostgreSQL binaries in `bin`, run as [`UNPRIVILEGED_USER`] when `as_root`.
pub fn pg_command(bin: &Path, program: &str, as_root: bool) -> Command {
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
pub fn binaries() -> Option<PathBuf> {
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

/// Whether this process runs as root (PostgreSQL then runs as [`UNPRIVILEGED_USER`]).
pub fn is_root() -> bool {
    user_id() == "0"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_read_from_what_the_last_start_logged_only() {
        let dir = std::env::temp_dir().join(format!("herald-port-log-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("{err}"));
        let log = dir.join("postgres.log");
        let earlier = "LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use\n";
        fs::write(&log, earlier).unwrap_or_else(|err| panic!("{err}"));
        let logged = earlier.len() as u64;
        assert!(port_was_taken(&log, 0));
        assert!(!port_was_taken(&log, logged));

        let later = format!("{earlier}LOG:  database system is ready to accept connections\n");
        fs::write(&log, later).unwrap_or_else(|err| panic!("{err}"));
        assert!(!port_was_taken(&log, logged));
        fs::write(&log, format!("{earlier}{earlier}")).unwrap_or_else(|err| panic!("{err}"));
        assert!(port_was_taken(&log, logged));
        assert!(!port_was_taken(&dir.join("missing.log"), 0));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_lock_held_elsewhere_is_waited_for_until_the_deadline_then_named() {
        let path = std::env::temp_dir().join(format!("herald-lock-{}", uuid::Uuid::new_v4()));
        let held = lock_within(&path, Duration::from_secs(1)).unwrap_or_else(|err| panic!("{err}"));
        let started = Instant::now();
        let err = lock_within(&path, Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("stayed locked"), "{err}");
        drop(held);
        let again = lock_within(&path, Duration::from_secs(5));
        assert!(again.is_ok(), "{again:?}");
        let _ = fs::remove_file(&path);
    }
}

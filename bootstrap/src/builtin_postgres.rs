//! The built-in database: without `--postgres-url`, Herald runs a private PostgreSQL cluster
//! in its data directory, from the PostgreSQL binaries installed on the machine.
//!
//! Layout: `<data-dir>/postgres/` (mode 0700) holds the cluster (`data/`), its log
//! (`server.log`) and its unix socket. The cluster is created with `initdb` on first start
//! (trust authentication for local connections only: the unix socket and 127.0.0.1/::1) and
//! reused afterwards; it listens on the socket and on 127.0.0.1 at a free port (or
//! `--builtin-postgres-port`), and Herald uses its `herald` database. [`BuiltinPostgres::stop`]
//! (or dropping the handle) stops it with `pg_ctl stop -m fast`.
//!
//! One herald at a time runs a data directory's cluster: it holds an exclusive lock on
//! `<data-dir>/herald.lock`. A cluster found running while the lock is free was left by a
//! herald that was killed, and is stopped before it is started again.
//!
//! PostgreSQL refuses to run as root. When Herald runs as root, the cluster's directory is
//! given to the `postgres` user and `initdb`/`pg_ctl` run as that user through `runuser`.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, anyhow, bail};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The database Herald uses inside the built-in cluster.
pub const DATABASE: &str = "herald";
/// What a machine without PostgreSQL is told.
pub const NOT_INSTALLED: &str = "no PostgreSQL installation found for the built-in database \
    (looked for initdb and pg_ctl on PATH, in /usr/lib/postgresql/*/bin and \
    /usr/local/pgsql/bin): install it (apt-get install postgresql) or pass --postgres-url";
/// The user a root process runs PostgreSQL as.
pub const SYSTEM_USER: &str = "postgres";

/// Where and how to run the built-in cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinOptions {
    /// The data directory; the cluster lives in its `postgres/` subdirectory.
    pub data_dir: PathBuf,
    /// The 127.0.0.1 port to listen on; a free one when `None`.
    pub port: Option<u16>,
}

/// A running built-in cluster. Stop it with [`BuiltinPostgres::stop`]; dropping the handle
/// stops it too (blocking).
#[derive(Debug)]
pub struct BuiltinPostgres {
    pg_ctl: PathBuf,
    pgdata: PathBuf,
    run_as: Option<RunAs>,
    url: String,
    port: u16,
    running: bool,
    /// Held while the cluster runs: one herald per data directory.
    _lock: std::fs::File,
}

/// How to run PostgreSQL's programs as an unprivileged user.
#[derive(Debug, Clone)]
struct RunAs {
    runuser: PathBuf,
    user: &'static str,
}

impl BuiltinPostgres {
    /// Creates the cluster if the data directory has none, starts it, and makes sure the
    /// `herald` database exists.
    ///
    /// # Errors
    /// One line saying what failed and how to fix it: no PostgreSQL installed, root without a
    /// `postgres` user, an unreachable data directory, another herald using it, or
    /// `initdb`/`pg_ctl` failing (with the last line of their output or of the server log).
    pub async fn start(options: &BuiltinOptions) -> Result<Self> {
        Self::start_with(options, free_port).await
    }

    /// As [`BuiltinPostgres::start`], taking the port (when none is given) from `next_port`:
    /// a port found free can be taken by another process before PostgreSQL binds it, so a start
    /// that finds its port in use tries the next one, up to [`PORT_ATTEMPTS`] ports.
    async fn start_with(
        options: &BuiltinOptions,
        mut next_port: impl FnMut() -> Result<u16>,
    ) -> Result<Self> {
        let bin_dir = find_binaries().ok_or_else(|| anyhow!(NOT_INSTALLED))?;
        let run_as = if running_as_root() {
            Some(unprivileged_user()?)
        } else {
            None
        };

        let lock = lock_data_dir(&options.data_dir)?;
        let root = options.data_dir.join("postgres");
        std::fs::create_dir_all(&root)
            .with_context(|| format!("creating the data directory {}", root.display()))?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", root.display()))?;
        if let Some(run_as) = &run_as {
            give_to(&root, run_as.user).await?;
            let reachable = command(Some(run_as), Path::new("test"))
                .arg("-w")
                .arg(&root)
                .status()
                .await
                .map(|status| status.success())
                .unwrap_or(false);
            if !reachable {
                bail!(
                    "the {user} user (PostgreSQL refuses to run as root) cannot write to {dir}: \
                     a parent directory is private; choose a --data-dir it can reach, such as \
                     /var/lib/herald",
                    user = run_as.user,
                    dir = root.display()
                );
            }
        }

        let pgdata = root.join("data");
        if !pgdata.join("PG_VERSION").exists() {
            initdb(&bin_dir, run_as.as_ref(), &root, &pgdata).await?;
        }

        let pg_ctl = bin_dir.join("pg_ctl");
        let status = command(run_as.as_ref(), &pg_ctl)
            .arg("status")
            .arg("-D")
            .arg(&pgdata)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .context("running pg_ctl status")?;
        if status.success() {
            // We hold the data directory's lock, so no live herald owns this cluster: a
            // previous herald was killed before it could stop it.
            tracing::warn!(
                dir = %pgdata.display(),
                "stopping a built-in PostgreSQL left running by a previous herald"
            );
            let output = command(run_as.as_ref(), &pg_ctl)
                .arg("stop")
                .arg("-D")
                .arg(&pgdata)
                .args(["-m", "fast", "-w", "-s"])
                .output()
                .await
                .context("running pg_ctl stop")?;
            if !output.status.success() {
                bail!(
                    "the built-in PostgreSQL in {} was left running and could not be stopped: {}",
                    pgdata.display(),
                    last_line(&String::from_utf8_lossy(&output.stderr)).unwrap_or_default()
                );
            }
        }

        let log = root.join("server.log");
        let mut attempt = 0;
        let port = loop {
            attempt += 1;
            let port = match options.port {
                Some(port) => port,
                None => next_port()?,
            };
            // `pg_ctl -l` appends: what this attempt logged starts here.
            let logged_before = std::fs::metadata(&log).map_or(0, |meta| meta.len());
            let output = command(run_as.as_ref(), &pg_ctl)
                .arg("start")
                .arg("-D")
                .arg(&pgdata)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-s", "-o"])
                .arg(format!("-p {port}"))
                .output()
                .await
                .context("running pg_ctl start")?;
            if output.status.success() {
                break port;
            }
            let logged = std::fs::read(&log)
                .ok()
                .and_then(|bytes| {
                    let start = usize::try_from(logged_before).ok()?.min(bytes.len());
                    Some(String::from_utf8_lossy(&bytes[start..]).into_owned())
                })
                .unwrap_or_default();
            if options.port.is_none()
                && attempt < PORT_ATTEMPTS
                && logged.contains("Address already in use")
            {
                tracing::info!(
                    port,
                    "the built-in PostgreSQL's port was taken; trying another"
                );
                continue;
            }
            let log_tail = last_line(&logged).unwrap_or_else(|| {
                last_line(&String::from_utf8_lossy(&output.stderr)).unwrap_or_default()
            });
            bail!(
                "the built-in PostgreSQL did not start (see {}): {log_tail}",
                log.display()
            );
        };

        let mut cluster = Self {
            pg_ctl,
            pgdata,
            run_as,
            url: format!("postgres://{SYSTEM_USER}@127.0.0.1:{port}/{DATABASE}"),
            port,
            running: true,
            _lock: lock,
        };
        if let Err(err) = cluster.create_database().await {
            cluster.stop_now();
            return Err(err);
        }
        tracing::info!(
            data_dir = %options.data_dir.display(),
            port,
            "built-in PostgreSQL started"
        );
        Ok(cluster)
    }

    /// The connection URL of the `herald` database (no password: trust on 127.0.0.1).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the cluster (`pg_ctl stop -m fast`: open connections are closed).
    ///
    /// # Errors
    /// When `pg_ctl stop` fails; the cluster may still be running.
    pub async fn stop(mut self) -> Result<()> {
        self.running = false;
        let output = command(self.run_as.as_ref(), &self.pg_ctl)
            .arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w", "-s"])
            .output()
            .await
            .context("running pg_ctl stop")?;
        if !output.status.success() {
            bail!(
                "stopping the built-in PostgreSQL failed: {}",
                last_line(&String::from_utf8_lossy(&output.stderr)).unwrap_or_default()
            );
        }
        tracing::info!("built-in PostgreSQL stopped");
        Ok(())
    }

    /// Stops the cluster from synchronous code (`Drop`, an error path).
    fn stop_now(&mut self) {
        if !std::mem::take(&mut self.running) {
            return;
        }
        let (program, mut args) = match &self.run_as {
            Some(run_as) => (
                run_as.runuser.clone().into_os_string(),
                vec![
                    OsString::from("-u"),
                    run_as.user.into(),
                    "--".into(),
                    self.pg_ctl.clone().into_os_string(),
                ],
            ),
            None => (self.pg_ctl.clone().into_os_string(), Vec::new()),
        };
        args.extend([
            "stop".into(),
            "-D".into(),
            self.pgdata.clone().into_os_string(),
            "-m".into(),
            "fast".into(),
            "-w".into(),
            "-s".into(),
        ]);
        if let Err(err) = std::process::Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            tracing::warn!(error = %err, "could not stop the built-in PostgreSQL");
        }
    }

    async fn create_database(&self) -> Result<()> {
        let admin_url = format!("postgres://{SYSTEM_USER}@127.0.0.1:{}/postgres", self.port);
        let mut connection = PgConnection::connect(&admin_url)
            .await
            .context("connecting to the built-in PostgreSQL")?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(DATABASE)
                .fetch_optional(&mut connection)
                .await
                .context("looking for the herald database in the built-in PostgreSQL")?;
        if exists.is_none() {
            sqlx::query(&format!("CREATE DATABASE {DATABASE}"))
                .execute(&mut connection)
                .await
                .context("creating the herald database in the built-in PostgreSQL")?;
        }
        connection.close().await.ok();
        Ok(())
    }
}

impl Drop for BuiltinPostgres {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The file whose exclusive lock a herald holds while it runs the data directory's cluster.
pub const LOCK_FILE: &str = "herald.lock";

/// Takes the data directory's lock, or says that another herald holds it.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another herald is running the built-in PostgreSQL in {} (its lock {} is held); \
             stop it or choose another --data-dir",
            data_dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Whether this process runs with root's effective user id (read from `/proc/self/status`).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The directory holding both `initdb` and `pg_ctl`: on PATH (following a symlink such as
/// Debian's `/usr/local/bin/initdb` to its real directory), else the newest
/// `/usr/lib/postgresql/<version>/bin`, else `/usr/local/pgsql/bin`.
fn find_binaries() -> Option<PathBuf> {
    find_binaries_in(
        &std::env::var_os("PATH").unwrap_or_default(),
        Path::new("/usr/lib/postgresql"),
        Path::new("/usr/local/pgsql/bin"),
    )
}

/// [`find_binaries`] over a given `PATH` value, versioned install root and fallback directory.
fn find_binaries_in(path: &OsStr, versioned: &Path, fallback: &Path) -> Option<PathBuf> {
    let complete = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    for dir in std::env::split_paths(path) {
        let initdb = dir.join("initdb");
        if !initdb.is_file() {
            continue;
        }
        if let Some(real) = std::fs::canonicalize(&initdb)
            .ok()
            .and_then(|real| real.parent().map(Path::to_path_buf))
            && complete(&real)
        {
            return Some(real);
        }
        if complete(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(versioned)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|(_, dir)| dir)
        .chain([fallback.to_path_buf()])
        .find(|dir| complete(dir))
}

/// `runuser -u postgres`, or why root cannot run PostgreSQL here.
fn unprivileged_user() -> Result<RunAs> {
    let has_user = std::fs::read_to_string("/etc/passwd")
        .map(|passwd| {
            passwd
                .lines()
                .any(|line| line.split(':').next() == Some(SYSTEM_USER))
        })
        .unwrap_or(false);
    if !has_user {
        bail!(
            "PostgreSQL refuses to run as root and there is no '{SYSTEM_USER}' user to run the \
             built-in database as: run herald as another user, create one (useradd --system \
             {SYSTEM_USER}), or pass --postgres-url"
        );
    }
    let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .ok_or_else(|| {
            anyhow!(
                "PostgreSQL refuses to run as root and runuser (util-linux) is not installed to \
                 run the built-in database as '{SYSTEM_USER}': run herald as another user, \
                 install util-linux, or pass --postgres-url"
            )
        })?;
    Ok(RunAs {
        runuser,
        user: SYSTEM_USER,
    })
}

/// A command for `program`, run as `run_as` when set.
fn command(run_as: Option<&RunAs>, program: &Path) -> tokio::process::Command {
    match run_as {
        Some(run_as) => {
            let mut command = tokio::process::Command::new(&run_as.runuser);
            command.args(["-u", run_as.user, "--"]).arg(program);
            command
        }
        None => tokio::process::Command::new(program),
    }
}

/// Hands `dir` to `user` (what PostgreSQL creates inside is its own already).
async fn give_to(dir: &Path, user: &str) -> Result<()> {
    let status = tokio::process::Command::new("chown")
        .arg(format!("{user}:"))
        .arg(dir)
        .status()
        .await
        .context("running chown")?;
    if !status.success() {
        bail!(
            "could not give {} to the {user} user (chown failed)",
            dir.display()
        );
    }
    Ok(())
}

/// Creates the cluster in `pgdata` and points its socket at `root`.
async fn initdb(bin_dir: &Path, run_as: Option<&RunAs>, root: &Path, pgdata: &Path) -> Result<()> {
    // A previous initdb that died half-way leaves a directory initdb refuses to reuse.
    if pgdata.exists() {
        std::fs::remove_dir_all(pgdata)
            .with_context(|| format!("removing the incomplete cluster {}", pgdata.display()))?;
    }
    let output = command(run_as, &bin_dir.join("initdb"))
        .arg("-D")
        .arg(pgdata)
        .args([
            "--username",
            SYSTEM_USER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
        ])
        .output()
        .await
        .context("running initdb")?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(pgdata);
        bail!(
            "initdb failed to create the built-in database in {}: {}",
            pgdata.display(),
            last_line(&String::from_utf8_lossy(&output.stderr)).unwrap_or_default()
        );
    }
    let quoted = root.display().to_string().replace('\'', "''");
    let settings = format!(
        "\n# Herald's built-in cluster: loopback and a private unix socket only.\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = '{quoted}'\n"
    );
    let conf = pgdata.join("postgresql.conf");
    let mut text =
        std::fs::read_to_string(&conf).with_context(|| format!("reading {}", conf.display()))?;
    text.push_str(&settings);
    std::fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
    tracing::info!(dir = %pgdata.display(), "built-in PostgreSQL cluster created");
    Ok(())
}

/// How many free ports a start tries before giving up (see [`BuiltinPostgres::start`]).
const PORT_ATTEMPTS: usize = 5;

/// A port on 127.0.0.1 that nothing listens on right now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("finding a free port for the built-in PostgreSQL")?;
    Ok(listener.local_addr()?.port())
}

fn last_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("herald-find-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn install(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("initdb"), "").unwrap();
        std::fs::write(dir.join("pg_ctl"), "").unwrap();
    }

    #[test]
    fn no_installation_is_found_where_there_is_none() {
        let root = scratch("none");

        let found = find_binaries_in(OsStr::new(""), &root.join("lib"), &root.join("pgsql"));

        assert_eq!(found, None);
        assert!(NOT_INSTALLED.contains("apt-get install postgresql"));
        assert!(NOT_INSTALLED.contains("--postgres-url"));
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn path_comes_first_then_the_newest_versioned_install_then_the_fallback() {
        let root = scratch("order");
        install(&root.join("lib/9/bin"));
        install(&root.join("lib/16/bin"));
        install(&root.join("lib/15/bin"));
        install(&root.join("pgsql"));
        install(&root.join("on-path"));
        let find = |path: &Path| {
            find_binaries_in(path.as_os_str(), &root.join("lib"), &root.join("pgsql"))
        };

        assert_eq!(find(&root.join("on-path")), Some(root.join("on-path")));
        assert_eq!(find(&root.join("elsewhere")), Some(root.join("lib/16/bin")));
        std::fs::remove_dir_all(root.join("lib")).unwrap();
        assert_eq!(find(&root.join("elsewhere")), Some(root.join("pgsql")));
        std::fs::remove_dir_all(&root).ok();
    }

    /// A data directory of its own under the temp dir, which the `postgres` user can reach.
    fn data_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "herald-builtin-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn options(data_dir: &Path, port: Option<u16>) -> BuiltinOptions {
        BuiltinOptions {
            data_dir: data_dir.to_owned(),
            port,
        }
    }

    /// Whether `SELECT 1` runs at `url`.
    async fn answers(url: &str) -> bool {
        let Ok(mut connection) = PgConnection::connect(url).await else {
            return false;
        };
        let one: Result<i32, _> = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut connection)
            .await;
        connection.close().await.ok();
        one.is_ok_and(|one| one == 1)
    }

    #[tokio::test]
    async fn a_cluster_directory_left_half_made_by_initdb_is_made_again() {
        let dir = data_dir("half-initdb");
        let pgdata = dir.join("postgres/data");
        std::fs::create_dir_all(pgdata.join("base")).unwrap();
        std::fs::write(pgdata.join("postgresql.conf"), "# cut short\n").unwrap();

        let cluster = BuiltinPostgres::start(&options(&dir, None)).await.unwrap();

        assert!(pgdata.join("PG_VERSION").is_file());
        assert!(answers(cluster.url()).await);
        cluster.stop().await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn a_postmaster_pid_left_by_a_crash_does_not_stop_the_next_start() {
        let dir = data_dir("stale-pid");
        let pid_file = dir.join("postgres/data/postmaster.pid");
        let cluster = BuiltinPostgres::start(&options(&dir, None)).await.unwrap();
        let left_behind = std::fs::read_to_string(&pid_file).unwrap();
        let postmaster = Path::new("/proc").join(left_behind.lines().next().unwrap());
        cluster.stop().await.unwrap();
        // The pid file goes before the process has quite exited.
        tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while postmaster.exists() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        // As a crash leaves it: the file names a postmaster that is gone.
        std::fs::write(&pid_file, left_behind).unwrap();

        let again = BuiltinPostgres::start(&options(&dir, None)).await.unwrap();

        assert!(answers(again.url()).await);
        again.stop().await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn a_free_port_taken_before_postgres_binds_it_is_replaced_by_another() {
        let dir = data_dir("taken-port");
        // Found free, then taken by someone else before PostgreSQL binds it.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut ports = vec![taken.local_addr().unwrap().port()].into_iter();

        let cluster = BuiltinPostgres::start_with(&options(&dir, None), || {
            ports.next().map_or_else(free_port, Ok)
        })
        .await
        .unwrap();

        assert_ne!(cluster.port(), taken.local_addr().unwrap().port());
        assert!(answers(cluster.url()).await);
        cluster.stop().await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn the_port_asked_for_is_the_one_listened_on() {
        let dir = data_dir("port");
        let port = free_port().unwrap();

        let cluster = BuiltinPostgres::start(&options(&dir, Some(port)))
            .await
            .unwrap();

        assert_eq!(cluster.port(), port);
        let url = format!("postgres://{SYSTEM_USER}@127.0.0.1:{port}/{DATABASE}");
        assert_eq!(cluster.url(), url);
        assert!(answers(&url).await);
        cluster.stop().await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn a_herald_database_that_cannot_be_created_fails_the_start_and_stops_the_cluster() {
        let dir = data_dir("no-template");
        let cluster = BuiltinPostgres::start(&options(&dir, None)).await.unwrap();
        let admin = format!(
            "postgres://{SYSTEM_USER}@127.0.0.1:{}/postgres",
            cluster.port()
        );
        let mut connection = PgConnection::connect(&admin).await.unwrap();
        // Without template1, CREATE DATABASE has nothing to copy.
        for statement in [
            "DROP DATABASE herald",
            "ALTER DATABASE template1 RENAME TO template_gone",
        ] {
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .unwrap();
        }
        connection.close().await.ok();
        cluster.stop().await.unwrap();

        let err = BuiltinPostgres::start(&options(&dir, None))
            .await
            .unwrap_err();

        let chain = format!("{err:#}");
        assert!(chain.contains("creating the herald database"), "{chain}");
        assert!(
            !dir.join("postgres/data/postmaster.pid").exists(),
            "the cluster was left running"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}

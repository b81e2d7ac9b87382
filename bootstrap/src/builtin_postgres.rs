//! The built-in database: without `--postgres-url`, Herald runs a private PostgreSQL cluster
//! in its data directory, from the PostgreSQL binaries installed on the machine.
//!
//! Layout: `<data-dir>/postgres/` (mode 0700) holds the cluster (`data/`), its log
//! (`server.log`), its unix socket and the superuser's password ([`PASSWORD_FILE`], mode
//! 0600). The cluster is created with `initdb` on first start and reused afterwards; it listens
//! on the socket and on 127.0.0.1 at a free port (or `--builtin-postgres-port`), and Herald uses
//! its `herald` database. [`BuiltinPostgres::stop`] (or dropping the handle) stops it with
//! `pg_ctl stop -m fast`.
//!
//! Only Herald gets in: every connection, on the socket as on 127.0.0.1, must give the
//! password (scram-sha-256, [`PG_HBA`]), generated on first start. Any other local user or
//! process could otherwise connect as the superuser, read the secrets and mint an owner token.
//! A cluster made before this (which trusted every local connection) is brought in line before
//! it starts: its superuser is given the password in single-user mode, with nothing listening,
//! and its `pg_hba.conf` replaced. The same happens when the password file is lost.
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
use tokio::io::AsyncWriteExt as _;

use crate::config::{PostgresUrl, Secret};

/// The database Herald uses inside the built-in cluster.
pub const DATABASE: &str = "herald";
/// What a machine without PostgreSQL is told.
pub const NOT_INSTALLED: &str = "no PostgreSQL installation found for the built-in database \
    (looked for initdb and pg_ctl on PATH, in /usr/lib/postgresql/*/bin and \
    /usr/local/pgsql/bin): install it (apt-get install postgresql) or pass --postgres-url";
/// The user a root process runs PostgreSQL as.
pub const SYSTEM_USER: &str = "postgres";
/// The file in `<data-dir>/postgres/` holding the superuser's password.
pub const PASSWORD_FILE: &str = "password";
/// The cluster's `pg_hba.conf`: the password, on every way in.
pub const PG_HBA: &str = "\
# Herald's built-in cluster: only Herald, which holds the password in ../password.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
";

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
    /// Holds the password: shown with it masked.
    url: PostgresUrl,
    /// The `postgres` database, where `herald` is created.
    admin_url: PostgresUrl,
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
        let (password, password_is_new) = password_in(&root, run_as.as_ref()).await?;
        let created = !pgdata.join("PG_VERSION").exists();
        if created {
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

        let hba = pgdata.join("pg_hba.conf");
        let hba_is_ours = std::fs::read_to_string(&hba).is_ok_and(|text| text == PG_HBA);
        if !created && (password_is_new || !hba_is_ours) {
            set_password(&bin_dir, run_as.as_ref(), &pgdata, &password).await?;
            tracing::info!(
                dir = %pgdata.display(),
                "built-in PostgreSQL: the superuser's password was set"
            );
        }
        if !hba_is_ours {
            std::fs::write(&hba, PG_HBA).with_context(|| format!("writing {}", hba.display()))?;
            if !created {
                tracing::info!(
                    dir = %pgdata.display(),
                    "built-in PostgreSQL: local connections now need the password"
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
            url: PostgresUrl::new(url_of(&password, port, DATABASE)),
            admin_url: PostgresUrl::new(url_of(&password, port, "postgres")),
            run_as,
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

    /// The connection URL of the `herald` database, with the password (shown masked).
    pub fn url(&self) -> &PostgresUrl {
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
        let mut connection = PgConnection::connect(self.admin_url.expose())
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

/// Creates the cluster in `pgdata`, its superuser's password the one in `root`'s
/// [`PASSWORD_FILE`], and points its socket at `root`.
async fn initdb(bin_dir: &Path, run_as: Option<&RunAs>, root: &Path, pgdata: &Path) -> Result<()> {
    // A previous initdb that died half-way leaves a directory initdb refuses to reuse.
    if pgdata.exists() {
        std::fs::remove_dir_all(pgdata)
            .with_context(|| format!("removing the incomplete cluster {}", pgdata.display()))?;
    }
    let output = command(run_as, &bin_dir.join("initdb"))
        .arg("-D")
        .arg(pgdata)
        .arg("--pwfile")
        .arg(root.join(PASSWORD_FILE))
        .args([
            "--username",
            SYSTEM_USER,
            "--auth",
            "scram-sha-256",
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

/// The password of the cluster in `root` and whether it was generated just now: read from
/// [`PASSWORD_FILE`], else generated into it (mode 0600, owned by the user PostgreSQL runs as,
/// for `initdb --pwfile`).
async fn password_in(root: &Path, run_as: Option<&RunAs>) -> Result<(Secret, bool)> {
    let path = root.join(PASSWORD_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((Secret::new(text.trim()), false)),
        Ok(_) => {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the empty {}", path.display()))?;
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    }
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|err| anyhow!("generating the built-in PostgreSQL's password: {err}"))?;
    let password = hex::encode(bytes);
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        writeln!(file, "{password}").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(run_as) = run_as {
        give_to(&path, run_as.user).await?;
    }
    Ok((Secret::new(password), true))
}

/// Gives the superuser of the stopped cluster in `pgdata` this password, in single-user mode
/// (nothing listens meanwhile). The statement goes on standard input, never on a command line.
async fn set_password(
    bin_dir: &Path,
    run_as: Option<&RunAs>,
    pgdata: &Path,
    password: &Secret,
) -> Result<()> {
    let mut child = command(run_as, &bin_dir.join("postgres"))
        .arg("--single")
        .arg("-D")
        .arg(pgdata)
        .args(["-c", "password_encryption=scram-sha-256", "postgres"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running postgres --single to set the built-in PostgreSQL's password")?;
    if let Some(mut stdin) = child.stdin.take() {
        let statement = format!(
            "ALTER ROLE {SYSTEM_USER} WITH PASSWORD '{}'\n",
            password.expose()
        );
        stdin
            .write_all(statement.as_bytes())
            .await
            .context("setting the built-in PostgreSQL's password")?;
    }
    let output = child
        .wait_with_output()
        .await
        .context("setting the built-in PostgreSQL's password")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Only PostgreSQL's own error lines: a `STATEMENT:` line would show the password.
    let error = stderr
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("ERROR:") || line.starts_with("FATAL:"));
    if !output.status.success() || error.is_some() {
        bail!(
            "could not set the password of the built-in PostgreSQL in {}: {}",
            pgdata.display(),
            error.unwrap_or("postgres --single failed")
        );
    }
    Ok(())
}

/// The URL of `database` on the cluster at `port`, as its superuser.
fn url_of(password: &Secret, port: u16, database: &str) -> String {
    format!(
        "postgres://{SYSTEM_USER}:{}@127.0.0.1:{port}/{database}",
        password.expose()
    )
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
        assert!(answers(cluster.url().expose()).await);
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

        assert!(answers(again.url().expose()).await);
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
        assert!(answers(cluster.url().expose()).await);
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
        let url = cluster.url().expose();
        assert!(
            url.starts_with(&format!("postgres://{SYSTEM_USER}:")),
            "{url}"
        );
        assert!(
            url.ends_with(&format!("@127.0.0.1:{port}/{DATABASE}")),
            "{url}"
        );
        assert!(answers(url).await);
        cluster.stop().await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn a_herald_database_that_cannot_be_created_fails_the_start_and_stops_the_cluster() {
        let dir = data_dir("no-template");
        let cluster = BuiltinPostgres::start(&options(&dir, None)).await.unwrap();
        let mut connection = PgConnection::connect(cluster.admin_url.expose())
            .await
            .unwrap();
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

    /// Connects as the superuser without a password, over TCP or over the cluster's socket.
    async fn without_a_password(dir: &Path, port: u16) -> [Result<PgConnection, sqlx::Error>; 2] {
        let socket = dir.join("postgres");
        [
            PgConnection::connect(&format!(
                "postgres://{SYSTEM_USER}@127.0.0.1:{port}/{DATABASE}"
            ))
            .await,
            PgConnection::connect_with(
                &sqlx::postgres::PgConnectOptions::new()
                    .socket(&socket)
                    .port(port)
                    .username(SYSTEM_USER)
                    .database(DATABASE),
            )
            .await,
        ]
    }

    fn refused(attempts: [Result<PgConnection, sqlx::Error>; 2]) {
        for (way, attempt) in ["127.0.0.1", "the unix socket"].iter().zip(attempts) {
            match attempt {
                Ok(_) => panic!("a connection without the password got in over {way}"),
                Err(err) => {
                    let text = err.to_string();
                    assert!(
                        text.contains("password") || text.contains("28P01"),
                        "over {way}: {text}"
                    );
                }
            }
        }
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn only_a_connection_with_the_generated_password_gets_in() {
        let dir = data_dir("password");

        let cluster = BuiltinPostgres::start(&options(&dir, None)).await.unwrap();

        refused(without_a_password(&dir, cluster.port()).await);
        assert!(answers(cluster.url().expose()).await);
        assert_eq!(mode_of(&dir.join("postgres")), 0o700);
        assert_eq!(mode_of(&dir.join("postgres").join(PASSWORD_FILE)), 0o600);
        let password = std::fs::read_to_string(dir.join("postgres").join(PASSWORD_FILE)).unwrap();
        let password = password.trim();
        assert!(cluster.url().expose().contains(password));
        for shown in [
            format!("{cluster:?}"),
            cluster.url().to_string(),
            format!("{:?}", cluster.url()),
        ] {
            assert!(!shown.contains(password), "the password shows: {shown}");
        }
        cluster.stop().await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    /// What the cluster of a Herald that trusted local connections looked like: `initdb --auth
    /// trust`, no password file, a superuser without a password; here holding a row of data.
    async fn trusting_cluster(dir: &Path) {
        let bin_dir = find_binaries().unwrap();
        let run_as = running_as_root().then(|| unprivileged_user().unwrap());
        let root = dir.join("postgres");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        if let Some(run_as) = &run_as {
            give_to(&root, run_as.user).await.unwrap();
        }
        let pgdata = root.join("data");
        let run = |program: &str, args: Vec<OsString>| {
            let mut command = command(run_as.as_ref(), &bin_dir.join(program));
            command.args(args);
            async move {
                let output = command.output().await.unwrap();
                assert!(output.status.success(), "{output:?}");
            }
        };
        run(
            "initdb",
            ["-D".into(), pgdata.clone().into_os_string()]
                .into_iter()
                .chain(
                    [
                        "--username",
                        SYSTEM_USER,
                        "--auth",
                        "trust",
                        "--locale",
                        "C",
                    ]
                    .map(OsString::from),
                )
                .collect(),
        )
        .await;
        let conf = pgdata.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n",
            root.display()
        ));
        std::fs::write(&conf, text).unwrap();
        let port = free_port().unwrap();
        // The server's output to a log: it would hold `output`'s pipes open.
        let log = root.join("server.log");
        let pg_ctl = |verb: &str| -> Vec<OsString> {
            vec![
                verb.into(),
                "-D".into(),
                pgdata.clone().into_os_string(),
                "-l".into(),
                log.clone().into_os_string(),
                "-w".into(),
                "-s".into(),
                "-o".into(),
                format!("-p {port}").into(),
            ]
        };
        run("pg_ctl", pg_ctl("start")).await;
        let trusted = format!("postgres://{SYSTEM_USER}@127.0.0.1:{port}/postgres");
        let mut connection = PgConnection::connect(&trusted).await.unwrap();
        sqlx::query("CREATE DATABASE herald")
            .execute(&mut connection)
            .await
            .unwrap();
        connection.close().await.unwrap();
        let herald = format!("postgres://{SYSTEM_USER}@127.0.0.1:{port}/herald");
        let mut connection = PgConnection::connect(&herald).await.unwrap();
        for statement in [
            "CREATE TABLE kept (note text)",
            "INSERT INTO kept VALUES ('written before the upgrade')",
        ] {
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .unwrap();
        }
        connection.close().await.unwrap();
        run("pg_ctl", pg_ctl("stop")).await;
    }

    #[tokio::test]
    async fn a_cluster_that_trusted_local_connections_is_given_a_password_and_keeps_its_data() {
        let dir = data_dir("trusting");
        trusting_cluster(&dir).await;
        assert!(!dir.join("postgres").join(PASSWORD_FILE).exists());

        let cluster = BuiltinPostgres::start(&options(&dir, None)).await.unwrap();

        refused(without_a_password(&dir, cluster.port()).await);
        let mut connection = PgConnection::connect(cluster.url().expose()).await.unwrap();
        let note: String = sqlx::query_scalar("SELECT note FROM kept")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(note, "written before the upgrade");
        connection.close().await.ok();
        assert_eq!(
            std::fs::read_to_string(dir.join("postgres/data/pg_hba.conf")).unwrap(),
            PG_HBA
        );
        assert_eq!(mode_of(&dir.join("postgres").join(PASSWORD_FILE)), 0o600);
        cluster.stop().await.unwrap();

        // The next start finds it upgraded and changes nothing.
        let password = std::fs::read_to_string(dir.join("postgres").join(PASSWORD_FILE)).unwrap();
        let again = BuiltinPostgres::start(&options(&dir, None)).await.unwrap();
        assert!(answers(again.url().expose()).await);
        assert_eq!(
            std::fs::read_to_string(dir.join("postgres").join(PASSWORD_FILE)).unwrap(),
            password
        );
        again.stop().await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn a_lost_password_file_is_replaced_by_a_new_password() {
        let dir = data_dir("lost-password");
        let cluster = BuiltinPostgres::start(&options(&dir, None)).await.unwrap();
        cluster.stop().await.unwrap();
        std::fs::remove_file(dir.join("postgres").join(PASSWORD_FILE)).unwrap();

        let again = BuiltinPostgres::start(&options(&dir, None)).await.unwrap();

        assert!(answers(again.url().expose()).await);
        refused(without_a_password(&dir, again.port()).await);
        again.stop().await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }
}

//! The suite's own PostgreSQL cluster, from the installed binaries (found as the tests find
//! them, [`herald_tests::local_cluster::binaries`]): `initdb` into a fresh temporary directory,
//! started on a free port of 127.0.0.1, so a scenario can stop and start it again without
//! touching any server another process uses. Removed when dropped.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use herald_tests::local_cluster::{UNPRIVILEGED_USER, binaries, is_root, pg_command};

#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    base: PathBuf,
    port: u16,
    as_root: bool,
}

impl Cluster {
    /// Creates and starts the cluster; returns once it accepts connections.
    pub fn start() -> Result<Self> {
        let bin = binaries().ok_or_else(|| {
            anyhow!(
                "no PostgreSQL binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin"
            )
        })?;
        let base = std::env::temp_dir().join(format!(
            "herald-chaos-postgres-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&base)?;
        let as_root = is_root();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let cluster = Self {
            bin,
            base,
            port,
            as_root,
        };
        if as_root {
            run(
                Command::new("chown")
                    .args(["-R", UNPRIVILEGED_USER])
                    .arg(&cluster.base),
                "chown",
            )?;
        }
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(cluster.data()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        ]);
        run(&mut initdb, "initdb")?;
        cluster.start_again()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    fn command(&self, program: &str) -> Command {
        pg_command(&self.bin, program, self.as_root)
    }

    /// The admin URL (the `postgres` database).
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Where the server logs.
    pub fn log(&self) -> PathBuf {
        self.base.join("postgres.log")
    }

    /// Starts the server (again) on its port; returns once it accepts connections.
    pub fn start_again(&self) -> Result<()> {
        // Durability off, as for the test cluster: what is measured is Herald's recovery,
        // not the disk's.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            self.port,
            self.base.display()
        );
        let mut start = self.command("pg_ctl");
        start
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-o", &options]);
        run(&mut start, "pg_ctl start").with_context(|| format!("see {}", self.log().display()))
    }

    /// Stops the server at once: every connection is ended (`pg_ctl stop -m fast`).
    pub fn stop(&self) -> Result<()> {
        self.stop_with("fast")
    }

    fn stop_with(&self, mode: &str) -> Result<()> {
        let mut stop = self.command("pg_ctl");
        stop.args(["stop", "-w", "-m", mode, "-D"]).arg(self.data());
        run(&mut stop, "pg_ctl stop")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop_with("immediate");
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

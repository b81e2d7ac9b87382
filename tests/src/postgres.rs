//! Test databases on a PostgreSQL server (DESIGN §9): one fresh database per test, so tests run
//! in parallel and never see each other's rows.
//!
//! Where the server comes from: `HERALD_TEST_DATABASE_URL` (an admin connection URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`; `.ci/run` and `cargo xtask ci` set it to the
//! machine's own server when one answers); else, when a Docker engine answers, a shared
//! container ([`crate::docker_postgres`]); else a throwaway cluster from the local PostgreSQL
//! binaries ([`crate::local_cluster`]). If none works, a test that needs PostgreSQL fails,
//! saying how to provide one — it never skips.

use std::str::FromStr;
use std::sync::OnceLock;

use herald_application::ports::TemplateStore;
use herald_domain::catalogue;
use herald_postgres::PgStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

/// The environment variable naming the server tests create their databases on.
pub const DATABASE_URL_VAR: &str = "HERALD_TEST_DATABASE_URL";

/// Every test database's name starts with this, so a stray one is easy to spot and drop.
const DATABASE_PREFIX: &str = "herald_test_";

/// The admin URL and its connection options, chosen once per test process.
fn admin() -> &'static (String, PgConnectOptions) {
    static ADMIN: OnceLock<Result<(String, PgConnectOptions), String>> = OnceLock::new();
    let admin = ADMIN.get_or_init(|| {
        let url = choose_server(
            std::env::var(DATABASE_URL_VAR).ok(),
            crate::docker_postgres::start,
            crate::local_cluster::start,
        )?;
        let options = PgConnectOptions::from_str(&url)
            .map_err(|err| format!("{DATABASE_URL_VAR} is not a PostgreSQL URL: {err}"))?;
        Ok((url, options))
    });
    match admin {
        Ok(admin) => admin,
        Err(message) => panic!("{message}"),
    }
}

/// The admin connection options (see [`admin`]).
fn admin_options() -> &'static PgConnectOptions {
    &admin().1
}

/// The admin URL of the test server, chosen as [`choose_server`] says (once per process), for
/// tests that create and drop their databases themselves, as the `herald` binary's tests do.
///
/// # Panics
/// When no server can be found or started: the message says how to provide one.
pub fn server_url() -> String {
    admin().0.clone()
}

/// DESIGN §9's order: the URL the environment names (an empty one counts as none); else a
/// Docker container when an engine answers (`docker` gives `None` when none does); else a
/// cluster from the local binaries; else an error saying how to provide a server. Later
/// sources are not tried once one answers.
pub fn choose_server(
    from_env: Option<String>,
    docker: impl FnOnce() -> Option<Result<String, String>>,
    local: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    if let Some(url) = from_env.filter(|url| !url.is_empty()) {
        return Ok(url);
    }
    if let Some(container) = docker() {
        return container.map_err(|why| format!("a Docker engine answers, but {why}"));
    }
    local().map_err(|why| {
        format!(
            "the PostgreSQL tests need a server: set {DATABASE_URL_VAR} to an admin \
             connection URL (one allowed to CREATE DATABASE), e.g. \
             {DATABASE_URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres, or install \
             PostgreSQL's server binaries (Debian: apt-get install postgresql) so a \
             throwaway cluster can be started; that failed: {why}"
        )
    })
}

/// A database of one test's own, dropped when the last handle to it goes.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    /// A store over the database, migrated and holding the catalogue's templates.
    pub store: PgStore,
}

impl TestDatabase {
    /// Creates a fresh database on the test server, migrates it and seeds the catalogue, as
    /// `herald` does at start.
    ///
    /// # Panics
    /// When no server is configured or it refuses: the test needing it fails with the reason.
    pub async fn create() -> TestDatabase {
        let database = Self::create_empty().await;
        if let Err(err) = database.store.migrate().await {
            panic!("cannot migrate the test database {}: {err}", database.name);
        }
        if let Err(err) = database.store.seed(&catalogue::templates()).await {
            panic!("cannot seed the test database {}: {err}", database.name);
        }
        database
    }

    /// Creates a fresh, empty database on the test server: no migration applied, for tests
    /// of the migrations themselves.
    ///
    /// # Panics
    /// As [`TestDatabase::create`].
    pub async fn create_empty() -> TestDatabase {
        let name = format!("{DATABASE_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let admin = admin_options();
        let mut connection = match admin.connect().await {
            Ok(connection) => connection,
            Err(err) => {
                panic!("cannot reach the test PostgreSQL server named by {DATABASE_URL_VAR}: {err}")
            }
        };
        if let Err(err) = sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
        {
            panic!("cannot create the test database {name}: {err}");
        }
        // Closing is best effort: the database exists either way.
        let _ = connection.close().await;

        let store = connect(&name).await;
        TestDatabase { name, store }
    }
}

impl TestDatabase {
    /// Another store on the same database with a pool of its own, as another replica has.
    pub async fn replica(&self) -> PgStore {
        connect(&self.name).await
    }

    /// Another store on the same database with a pool of its own, reaching the server at
    /// `address` (a [`crate::link::Link`] to it) rather than directly.
    pub async fn store_via(&self, address: std::net::SocketAddr) -> PgStore {
        let options = admin_options()
            .clone()
            .host(&address.ip().to_string())
            .port(address.port());
        connect_with(options, &self.name).await
    }

    /// The test server's TCP address, for a [`crate::link::Link`] to it.
    ///
    /// # Panics
    /// When the server is reached over a Unix socket, or its host name does not resolve.
    pub async fn server_address() -> std::net::SocketAddr {
        let admin = admin_options();
        let (host, port) = (admin.get_host(), admin.get_port());
        if host.starts_with('/') {
            panic!("a link to the test server needs TCP, not the Unix socket in {host}");
        }
        match tokio::net::lookup_host((host, port)).await {
            Ok(mut addresses) => match addresses.next() {
                Some(address) => address,
                None => panic!("the test server's host {host} has no address"),
            },
            Err(err) => panic!("cannot resolve the test server's host {host}: {err}"),
        }
    }

    /// A URL for this database, as a server would be given it.
    pub fn url(&self) -> String {
        admin_options()
            .clone()
            .database(&self.name)
            .to_url_lossy()
            .to_string()
    }
}

/// The tests' pools plan statements as [`PgStore::connect`]'s do, and are their stores' own.
async fn connect(name: &str) -> PgStore {
    connect_with(admin_options().clone(), name).await
}

async fn connect_with(server: PgConnectOptions, name: &str) -> PgStore {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(PgStore::session_settings(server.database(name)))
        .await;
    match pool {
        Ok(pool) => PgStore::from_own_pool(pool),
        Err(err) => panic!("cannot connect to the test database {name}: {err}"),
    }
}

impl Drop for TestDatabase {
    /// Drops the database (a test's runtime may already be shutting down, so on a thread and
    /// runtime of its own, waited for: the process does not exit before it is gone). Best
    /// effort: a database left behind is named `herald_test_…` and harmless.
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        let admin = admin_options().clone();
        let dropping = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut connection) = admin.connect().await {
                    // WITH (FORCE) ends the pool's connections still open on it (PostgreSQL 13+).
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(&drop).execute(&mut connection).await;
                    let _ = connection.close().await;
                }
            });
        });
        let _ = dropping.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_environment_url_counts_as_unset() {
        let url = choose_server(
            Some(String::new()),
            || Some(Ok("postgres://docker/postgres".to_owned())),
            || panic!("the local cluster was started although the container answered"),
        );
        assert_eq!(url.as_deref(), Ok("postgres://docker/postgres"));
    }
}

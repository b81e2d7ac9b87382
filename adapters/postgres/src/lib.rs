//! Herald's PostgreSQL adapter: every SQL statement Herald runs lives in this crate, next to
//! the port method that runs it.
//!
//! [`PgStore`] holds a connection pool and implements the storage ports over the schema of
//! `migrations/` (embedded here, applied by [`PgStore::migrate`]): `UserDirectory`,
//! `UserRegistry`, `PreferenceStore`, `TemplateStore`, `SettingsStore`, `InboxStore`,
//! `TokenStore`, `RateCounter`, `ResourceStateStore`, `TaskStateStore`, `BuildStore`, `ReportLog`
//! (claims under the advisory lock [`REPORT_LOCK_KEY`]) and `MessageQueue` (purges under the
//! advisory lock [`PURGE_LOCK_KEY`]).
//! [`PgSignals`] carries notifier wake-ups and the live inbox feed across replicas over LISTEN/NOTIFY.
//!
//! Driver errors never cross a port: `error` translates them into
//! [`herald_application::ports::StoreError`], matching the constraint names the migration
//! spells out.

mod builds;
mod connections;
mod digests;
mod error;
mod inbox;
mod preferences;
mod queue;
mod rates;
mod sessions;
mod settings;
mod signal_states;
mod signals;
mod templates;
mod tokens;
mod users;

pub use builds::REPORT_LOCK_KEY;
pub use queue::{
    PURGE_CHUNK_PAUSE, PURGE_CHUNK_ROWS, PURGE_LOCK_KEY, PurgeLockHolder, WRITE_BACK_STATEMENT,
    lease_statement, throttled_lease_statement,
};
pub use signals::{INBOX_CHANNEL, PgSignals, RESUMED_PAYLOAD, WAKEUP_CHANNEL};

use herald_application::ports::StoreError;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

/// The migrations of `migrations/` at the workspace root, compiled into the binary.
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Herald's storage in PostgreSQL. Clones share one connection pool, like the handles of one
/// replica; separate `PgStore`s over the same database behave as separate replicas.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Connections the hot statements keep between them (see `connections`).
    connections: std::sync::Arc<connections::Connections>,
}

/// Connections of a pool [`PgStore::connect`] opens: enough for one replica's API requests,
/// or for those and the notifier's lease, reads and write-back running at once on one pool.
/// The LISTEN connection of [`PgSignals`] comes on top.
pub const POOL_SIZE: u32 = 10;

impl PgStore {
    /// `options` with the session settings the store's statements are written for: each
    /// prepared statement planned once (`plan_cache_mode = force_generic_plan`). Every
    /// statement here has one good plan whatever its parameters, and PostgreSQL's own choice
    /// kept re-planning the directory read (`users WHERE id = ANY($1)`) on nearly every call, a
    /// large part of that statement's cost. For a host building its own pool, too.
    pub fn session_settings(
        options: sqlx::postgres::PgConnectOptions,
    ) -> sqlx::postgres::PgConnectOptions {
        options.options([("plan_cache_mode", "force_generic_plan")])
    }

    /// Connects a pool of [`POOL_SIZE`] connections to the database at `url`
    /// (`postgres://user@host:port/db`), as [`PgStore::connect_sized`] does.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server cannot be reached, else [`StoreError::Other`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_sized(url, POOL_SIZE).await
    }

    /// Connects a pool of at most `connections` connections to the database at `url`,
    /// retrying a server that does not answer for sqlx's default acquire timeout (30 s).
    ///
    /// The pool does not ping a connection before handing it out (sqlx's default does, which
    /// doubles the round trips of every statement), and the store keeps some connections out
    /// of it between statements (sqlx pings every connection given back); a connection the
    /// server dropped fails the one statement that finds out and is replaced, and connections
    /// idle in the pool for a minute are closed, so few go stale.
    ///
    /// Its sessions run with [`PgStore::session_settings`]; a pool from [`PgStore::from_pool`]
    /// keeps its own settings.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server cannot be reached, else [`StoreError::Other`].
    pub async fn connect_sized(url: &str, connections: u32) -> Result<Self, StoreError> {
        let options = Self::session_settings(
            url.parse::<sqlx::postgres::PgConnectOptions>()
                .map_err(error::store_error)?,
        );
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(connections)
            .test_before_acquire(false)
            .idle_timeout(std::time::Duration::from_secs(60))
            .connect_with(options)
            .await
            .map_err(error::store_error)?;
        Ok(Self::from_own_pool(pool))
    }

    /// Uses a pool that only this store (and its clones) draws from, such as the one
    /// [`PgStore::connect`] builds: the store keeps up to half of its connections between the
    /// statements it runs most often, rather than handing each back to the pool (see
    /// `connections`).
    pub fn from_own_pool(pool: PgPool) -> Self {
        let half = usize::try_from(pool.options().get_max_connections() / 2).unwrap_or(0);
        Self {
            pool,
            connections: std::sync::Arc::new(connections::Connections::keeping(half)),
        }
    }

    /// Uses a pool the caller built (an embedding host sharing its own pool). Every statement
    /// gives its connection back to that pool at once.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            connections: std::sync::Arc::new(connections::Connections::none()),
        }
    }

    /// A connection for one of the statements run most often (enqueue, lease, write-back, the
    /// directory and preference reads of each batch, the pause switch), kept by the store
    /// between them (see `connections`).
    async fn connection(&self) -> Result<connections::Connection<'_>, StoreError> {
        self.connections.take(&self.pool).await
    }

    /// How many of the pool's connections this store keeps aside right now (between
    /// statements; none over a host's pool). The rest are in the pool or in use.
    pub fn kept_connections(&self) -> usize {
        self.connections.kept()
    }

    /// The pool this store runs its statements on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool (see `sqlx::Pool::close`) once the connections this store keeps are
    /// back in it; waits until every connection is closed. Close a store's own pool
    /// ([`PgStore::connect`], [`PgStore::from_own_pool`]) here rather than through
    /// [`PgStore::pool`], whose `close` would wait for the kept connections for ever.
    pub async fn close(&self) {
        self.connections.close();
        self.pool.close().await;
    }

    /// Applies the migrations the database has not seen yet.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server cannot be reached, else [`StoreError::Other`]
    /// (a migration failed, or the database holds migrations this binary does not know).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|err| match err {
            sqlx::migrate::MigrateError::Execute(err) => error::store_error(err),
            other => StoreError::Other(format!("migrating the database: {other}")),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use herald_application::ports::SettingsStore;
    use sqlx::postgres::PgPoolOptions;

    use super::*;

    #[tokio::test]
    async fn a_server_that_does_not_answer_is_unavailable() {
        // Port 1 on loopback: nothing listens there, so every connection is refused.
        let pool = PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(300))
            .connect_lazy("postgres://herald@127.0.0.1:1/herald")
            .unwrap();
        let store = PgStore::from_pool(pool);

        let result = store.notifier_paused().await;

        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }
}

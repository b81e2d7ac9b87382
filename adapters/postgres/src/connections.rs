//! Connections kept between statements, so the hot statements skip sqlx's ping on release.
//!
//! sqlx 0.8's pool checks every connection it gets back with a ping (a `Sync` and its
//! `ReadyForQuery`: a second round trip, a second wake-up of the server process, and a task
//! spawned to run it) before another statement may use it. The store keeps a few connections
//! aside instead: a statement takes one (or, when none is kept, acquires one from the pool),
//! and gives it back to the store when it completed. A statement that failed, or whose future
//! was dropped half-way, drops its connection, which goes back to the pool the usual way (the
//! ping there also reads whatever the statement left unread).
//!
//! At most half the pool's connections are kept, so the statements that go to the pool
//! directly always find room. Kept connections stay open while the store lives (the pool's
//! idle timeout only closes those in the pool); `PgStore::close` hands them back, and a store
//! dropped outside a Tokio runtime closes them.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, PoisonError};

use herald_application::ports::StoreError;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

use crate::error::store_error;

/// The connections a store keeps aside; `None` inside for a pool that is not the store's own
/// (a host's), whose connections the store must not hold on to.
#[derive(Debug)]
pub(crate) struct Connections {
    kept: Option<Mutex<Kept>>,
    /// The most connections kept at once.
    limit: usize,
}

#[derive(Debug, Default)]
struct Kept {
    idle: Vec<PoolConnection<Postgres>>,
    /// Set by [`Connections::close`]: nothing is kept any more.
    closed: bool,
}

impl Drop for Kept {
    /// Outside a Tokio runtime (a store dropped after its runtime), a kept connection cannot go
    /// back to its pool (sqlx spawns a task for that, which would panic): it is closed instead.
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            for connection in self.idle.drain(..) {
                drop(connection.detach());
            }
        }
    }
}

impl Connections {
    /// Keeps up to `limit` connections of the store's own pool.
    pub(crate) fn keeping(limit: usize) -> Self {
        Self {
            kept: Some(Mutex::new(Kept::default())),
            limit,
        }
    }

    /// Keeps none: every statement goes to the pool.
    pub(crate) fn none() -> Self {
        Self {
            kept: None,
            limit: 0,
        }
    }

    /// Hands every kept connection back to the pool and keeps none from now on: the pool's
    /// `close` waits for every connection taken out of it.
    pub(crate) fn close(&self) {
        if let Some(kept) = &self.kept {
            let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
            kept.closed = true;
            kept.idle.clear();
        }
    }

    /// How many connections are kept aside now.
    pub(crate) fn kept(&self) -> usize {
        self.kept.as_ref().map_or(0, |kept| {
            kept.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .idle
                .len()
        })
    }

    /// A connection for one statement: a kept one, else one from `pool`.
    pub(crate) async fn take<'a>(&'a self, pool: &PgPool) -> Result<Connection<'a>, StoreError> {
        let kept = self.kept.as_ref().and_then(|kept| {
            kept.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .idle
                .pop()
        });
        let connection = match kept {
            Some(connection) => connection,
            None => pool.acquire().await.map_err(store_error)?,
        };
        Ok(Connection {
            connection,
            owner: self,
        })
    }
}

/// A connection taken for one statement; [`Connection::done`] gives it back to the store.
/// Dropped without that, it goes back to the pool.
pub(crate) struct Connection<'a> {
    connection: PoolConnection<Postgres>,
    owner: &'a Connections,
}

impl Connection<'_> {
    /// The statement completed: the store keeps the connection for the next one, if it has room.
    pub(crate) fn done(self) {
        let Connection { connection, owner } = self;
        let Some(kept) = &owner.kept else {
            return;
        };
        let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
        if !kept.closed && kept.idle.len() < owner.limit {
            kept.idle.push(connection);
        }
    }
}

impl Connection<'_> {
    /// The connection is closed when dropped, rather than going back to the pool: for one left
    /// inside a transaction it never finished.
    pub(crate) fn close_on_drop(&mut self) {
        self.connection.close_on_drop();
    }
}

impl Deref for Connection<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.connection
    }
}

impl DerefMut for Connection<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.connection
    }
}

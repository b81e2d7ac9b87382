use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{RateCounter, StoreError};
use herald_domain::UserId;

use super::MemoryStore;

/// One window per (scope, user): when it started and what it counted.
#[derive(Debug, Default)]
pub(super) struct Rates {
    windows: HashMap<(String, UserId), (DateTime<Utc>, u64)>,
}

impl Rates {
    /// Counts `n` in the window of `(scope, user)` starting at `window_start` (a window that
    /// started earlier restarts at 0 first); returns the count after.
    pub(super) fn add(
        &mut self,
        scope: &str,
        user: UserId,
        window_start: DateTime<Utc>,
        n: u64,
    ) -> u64 {
        let window = self
            .windows
            .entry((scope.to_owned(), user))
            .or_insert((window_start, 0));
        if window.0 < window_start {
            *window = (window_start, 0);
        }
        window.1 += n;
        window.1
    }
}

#[async_trait]
impl RateCounter for MemoryStore {
    async fn count(
        &self,
        scope: &str,
        user: UserId,
        window_start: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.with(|state| state.rates.add(scope, user, window_start, 1))
    }
}

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{RateCounter, StoreError};
use herald_domain::UserId;

use crate::PgStore;
use crate::error::store_error;

/// Counts in one statement: the row is created, restarted for a later window, or counted up,
/// under the row lock of the upsert, so replicas counting at once are all counted. Every
/// expression of `DO UPDATE SET` reads the row as it was.
const COUNT_STATEMENT: &str = "\
INSERT INTO rate_counts AS held (scope, user_id, window_start, count) VALUES ($1, $2, $3, 1) \
ON CONFLICT ON CONSTRAINT rate_counts_pkey DO UPDATE SET \
    count = CASE WHEN held.window_start < excluded.window_start THEN 1 ELSE held.count + 1 END, \
    window_start = GREATEST(held.window_start, excluded.window_start) \
RETURNING count";

#[async_trait]
impl RateCounter for PgStore {
    async fn count(
        &self,
        scope: &str,
        user: UserId,
        window_start: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(COUNT_STATEMENT)
            .bind(scope)
            .bind(user.as_uuid())
            .bind(window_start)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

use async_trait::async_trait;
use herald_application::ports::{SettingsStore, StoreError};

use crate::PgStore;
use crate::error::store_error;

/// The `settings` table holds exactly one row (created by the migration), so every replica reads
/// the same flag with no caching in between.
#[async_trait]
impl SettingsStore for PgStore {
    async fn notifier_paused(&self) -> Result<bool, StoreError> {
        let mut connection = self.connection().await?;
        let paused = sqlx::query_scalar("SELECT notifier_paused FROM settings")
            .fetch_one(&mut *connection)
            .await
            .map_err(store_error)?;
        connection.done();
        Ok(paused)
    }

    async fn set_notifier_paused(&self, paused: bool) -> Result<bool, StoreError> {
        // Updates only when the flag differs, so the affected row count is whether it changed,
        // in one atomic statement.
        let result = sqlx::query(
            "UPDATE settings SET notifier_paused = $1, updated_at = now() \
             WHERE notifier_paused IS DISTINCT FROM $1",
        )
        .bind(paused)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }
}

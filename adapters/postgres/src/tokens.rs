use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{NewToken, StoreError, TokenHash, TokenStore};
use herald_domain::UserId;
use uuid::Uuid;

use crate::PgStore;
use crate::error::{store_error, unique_violation};

/// The unique constraint on the hash (`0001_initial.sql`) and the per-user name index
/// (`0002_api_token_owner.sql`).
const HASH_KEY: &str = "api_tokens_token_hash_key";
const NAME_KEY: &str = "api_tokens_user_name_key";

#[async_trait]
impl TokenStore for PgStore {
    async fn insert(&self, token: &NewToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.id)
        .bind(token.user.as_uuid())
        .bind(&token.name)
        .bind(token.hash.as_bytes().as_slice())
        .bind(token.created_at)
        .execute(&self.pool)
        .await
        .map_err(|err| match unique_violation(&err) {
            Some(HASH_KEY) => StoreError::Conflict("token: the hash is already stored".to_owned()),
            Some(NAME_KEY) => StoreError::Conflict(format!(
                "name: the user already has a token named {:?}",
                token.name
            )),
            _ => store_error(err),
        })?;
        Ok(())
    }

    async fn find_user(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        // One statement finds the live token and records its use, writing `last_used_at` at
        // most once a minute per token: a busy client does not turn every request into a
        // row update.
        let user: Option<Uuid> = sqlx::query_scalar(
            "WITH found AS ( \
                 SELECT id, user_id, last_used_at FROM api_tokens \
                 WHERE token_hash = $1 AND revoked_at IS NULL \
                   AND (expires_at IS NULL OR expires_at > $2)), \
             touched AS ( \
                 UPDATE api_tokens SET last_used_at = $2 FROM found \
                 WHERE api_tokens.id = found.id \
                   AND (found.last_used_at IS NULL \
                        OR found.last_used_at < $2 - interval '1 minute')) \
             SELECT user_id FROM found",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(user.map(UserId::from_uuid))
    }

    async fn revoke_all(&self, user: UserId, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user.as_uuid())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected())
    }
}

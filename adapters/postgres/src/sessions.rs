use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{NewSession, SessionStore, StoreError, TokenHash};
use herald_domain::UserId;
use uuid::Uuid;

use crate::PgStore;
use crate::error::{store_error, unique_violation};

/// The primary keys of `0014_web_sessions.sql`.
const SESSION_KEY: &str = "web_sessions_pkey";
const LINK_KEY: &str = "sign_in_links_pkey";

#[async_trait]
impl SessionStore for PgStore {
    async fn insert_session(&self, session: &NewSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO web_sessions (session_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(session.hash.as_bytes().as_slice())
        .bind(session.user.as_uuid())
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|err| match unique_violation(&err) {
            Some(SESSION_KEY) => {
                StoreError::Conflict("session: the hash is already stored".to_owned())
            }
            _ => store_error(err),
        })?;
        Ok(())
    }

    async fn find_session(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        let user: Option<Uuid> = sqlx::query_scalar(
            "SELECT user_id FROM web_sessions WHERE session_hash = $1 AND expires_at > $2",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(user.map(UserId::from_uuid))
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM web_sessions WHERE session_hash = $1")
            .bind(hash.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_sessions_of(&self, user: UserId) -> Result<u64, StoreError> {
        let ended: i64 = sqlx::query_scalar(
            "WITH links AS (DELETE FROM sign_in_links WHERE user_id = $1), \
             ended AS (DELETE FROM web_sessions WHERE user_id = $1 RETURNING 1) \
             SELECT count(*) FROM ended",
        )
        .bind(user.as_uuid())
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(u64::try_from(ended).unwrap_or(0))
    }

    async fn insert_link(&self, link: &NewSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sign_in_links (link_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(link.hash.as_bytes().as_slice())
        .bind(link.user.as_uuid())
        .bind(link.created_at)
        .bind(link.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|err| match unique_violation(&err) {
            Some(LINK_KEY) => StoreError::Conflict("link: the hash is already stored".to_owned()),
            _ => store_error(err),
        })?;
        Ok(())
    }

    async fn take_link(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        // Deleted whether expired or not: one statement, so of two replicas redeeming the
        // same link at once only one gets a row back.
        let found: Option<(Uuid, DateTime<Utc>)> = sqlx::query_as(
            "DELETE FROM sign_in_links WHERE link_hash = $1 RETURNING user_id, expires_at",
        )
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(found
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(user, _)| UserId::from_uuid(user)))
    }

    async fn delete_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let deleted: i64 = sqlx::query_scalar(
            "WITH s AS (DELETE FROM web_sessions WHERE expires_at <= $1 RETURNING 1), \
             l AS (DELETE FROM sign_in_links WHERE expires_at <= $1 RETURNING 1) \
             SELECT (SELECT count(*) FROM s) + (SELECT count(*) FROM l)",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }
}

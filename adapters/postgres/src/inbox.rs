use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{InboxQuery, InboxStore, ReadStatus, StoreError};
use herald_domain::{Action, InboxNotification, InboxNotificationId, UserId};
use sqlx::types::Json;
use uuid::Uuid;

use crate::PgStore;
use crate::error::store_error;

/// How many notifications a listing returns when the query gives no limit (as the memory store).
const DEFAULT_PAGE: i64 = 25;

/// The columns every inbox query selects or returns, in [`InboxRow`]'s order.
const INBOX_COLUMNS: &str = "id, user_id, template_id, targets, title, content, title_markdown, \
    content_markdown, actions, read_at, created_at";

/// An `inbox_notifications` row as stored.
#[derive(Debug, sqlx::FromRow)]
struct InboxRow {
    id: Uuid,
    user_id: Uuid,
    template_id: Uuid,
    targets: Vec<Uuid>,
    title: String,
    content: String,
    title_markdown: String,
    content_markdown: String,
    actions: Json<Vec<Action>>,
    read_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<InboxRow> for InboxNotification {
    fn from(row: InboxRow) -> Self {
        InboxNotification {
            id: row.id.into(),
            user_id: row.user_id.into(),
            template_id: row.template_id.into(),
            targets: row.targets,
            title: row.title,
            content: row.content,
            title_markdown: row.title_markdown,
            content_markdown: row.content_markdown,
            actions: row.actions.0,
            read_at: row.read_at,
            created_at: row.created_at,
        }
    }
}

/// One stored notification by id (the live feed loads what a NOTIFY announced).
pub(crate) async fn fetch_notification(
    pool: &sqlx::PgPool,
    id: Uuid,
) -> Result<Option<InboxNotification>, StoreError> {
    let row: Option<InboxRow> = sqlx::query_as(&format!(
        "SELECT {INBOX_COLUMNS} FROM inbox_notifications WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(store_error)?;
    Ok(row.map(InboxNotification::from))
}

fn uuids<T: Copy + Into<Uuid>>(ids: &[T]) -> Vec<Uuid> {
    ids.iter().map(|id| (*id).into()).collect()
}

#[async_trait]
impl InboxStore for PgStore {
    async fn insert(&self, notification: &InboxNotification) -> Result<bool, StoreError> {
        // The id is the delivering message's: a second delivery of it changes nothing.
        let result = sqlx::query(
            "INSERT INTO inbox_notifications (id, user_id, template_id, targets, title, content, \
                 title_markdown, content_markdown, actions, read_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(notification.id.as_uuid())
        .bind(notification.user_id.as_uuid())
        .bind(notification.template_id.as_uuid())
        .bind(&notification.targets)
        .bind(&notification.title)
        .bind(&notification.content)
        .bind(&notification.title_markdown)
        .bind(&notification.content_markdown)
        .bind(Json(&notification.actions))
        .bind(notification.read_at)
        .bind(notification.created_at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn list(&self, query: &InboxQuery) -> Result<Vec<InboxNotification>, StoreError> {
        let read_status = match query.read_status {
            ReadStatus::All => "all",
            ReadStatus::Unread => "unread",
            ReadStatus::Read => "read",
        };
        let limit = match query.limit {
            0 => DEFAULT_PAGE,
            limit => i64::try_from(limit).unwrap_or(i64::MAX),
        };
        // Keyset paging on (created_at, id), served by inbox_notifications_user_created_idx.
        // The cursor counts only if it is one of this user's notifications (else: from the
        // newest). `targets @> $3` is "carries every one of them" (true for an empty $3).
        let rows: Vec<InboxRow> = sqlx::query_as(&format!(
            "WITH cursor AS ( \
                 SELECT created_at, id FROM inbox_notifications WHERE id = $5 AND user_id = $1 \
             ) \
             SELECT {INBOX_COLUMNS} FROM inbox_notifications \
             WHERE user_id = $1 \
               AND (cardinality($2::uuid[]) = 0 OR template_id = ANY($2)) \
               AND targets @> $3::uuid[] \
               AND CASE $4::text WHEN 'unread' THEN read_at IS NULL \
                                 WHEN 'read' THEN read_at IS NOT NULL \
                                 ELSE true END \
               AND (NOT EXISTS (SELECT 1 FROM cursor) \
                    OR (created_at, id) < (SELECT created_at, id FROM cursor)) \
             ORDER BY created_at DESC, id DESC \
             LIMIT $6"
        ))
        .bind(query.user.as_uuid())
        .bind(uuids(&query.templates))
        .bind(&query.targets)
        .bind(read_status)
        .bind(query.starting_before.map(Uuid::from))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows.into_iter().map(InboxNotification::from).collect())
    }

    async fn unread_count(&self, user: UserId) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM inbox_notifications WHERE user_id = $1 AND read_at IS NULL",
        )
        .bind(user.as_uuid())
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn set_read(
        &self,
        user: UserId,
        id: InboxNotificationId,
        read_at: Option<DateTime<Utc>>,
    ) -> Result<Option<InboxNotification>, StoreError> {
        // `user_id = $1` keeps one user from touching another's notification.
        let row: Option<InboxRow> = sqlx::query_as(&format!(
            "UPDATE inbox_notifications SET read_at = $3 WHERE user_id = $1 AND id = $2 \
             RETURNING {INBOX_COLUMNS}"
        ))
        .bind(user.as_uuid())
        .bind(id.as_uuid())
        .bind(read_at)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.map(InboxNotification::from))
    }

    async fn mark_all_read(&self, user: UserId, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE inbox_notifications SET read_at = $2 WHERE user_id = $1 AND read_at IS NULL",
        )
        .bind(user.as_uuid())
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected())
    }
}

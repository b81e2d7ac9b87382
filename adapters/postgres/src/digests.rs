//! The digest rows of an enqueue (`MessageQueue::enqueue`, DESIGN §10.3).
//!
//! Each digest row either appends its `data.items` to the open digest of its template,
//! recipient and method (pending, its window's close, `next_retry_after`, still ahead) or is
//! inserted as a new digest, in one statement per row (`GATHER_STATEMENT`). Two enqueues
//! racing for the same recipient would both find no open digest and both insert one, so the
//! rows' keys are locked first, in sorted order (`pg_advisory_xact_lock`, released at
//! commit): the second enqueue waits, then finds the first one's digest. A lease racing an
//! append needs no lock of its own: the append locks the row (`FOR UPDATE`) and checks its
//! status again once it has it, so an item lands in the digest before it is leased or opens
//! a new one, never in a digest already on its way out.

use herald_application::ports::{NewMessage, StoreError};
use herald_domain::MessageId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::store_error;

/// The seed of the digest keys' lock hashes (`hashtextextended`), apart from other advisory
/// locks' keys. Any 64-bit constant works; this one spells "digest" in ASCII.
const DIGEST_LOCK_SEED: i64 = 0x6469_6765_7374;

/// Appends to the open digest, else inserts the row as a new one; returns the digest's id.
const GATHER_STATEMENT: &str = "\
    WITH open AS ( \
        SELECT id FROM messages \
        WHERE recipient = $3 AND template_id = $2 AND method = $4::notification_method \
          AND digest AND status = 'pending' AND next_retry_after > $8 \
        ORDER BY created_at DESC, id DESC LIMIT 1 \
        FOR UPDATE), \
    appended AS ( \
        UPDATE messages AS m SET \
            payload = jsonb_set(m.payload::jsonb, '{data,items}', \
                COALESCE(m.payload::jsonb #> '{data,items}', '[]'::jsonb) \
                || COALESCE($5::jsonb #> '{data,items}', '[]'::jsonb))::json, \
            updated_at = $8 \
        FROM open WHERE m.id = open.id \
        RETURNING m.id), \
    inserted AS ( \
        INSERT INTO messages (id, template_id, recipient, method, payload, targets, \
            created_by, created_at, updated_at, next_retry_after, digest) \
        SELECT $1, $2, $3, $4::notification_method, $5::json, $6, $7, $8, $8, $9, true \
        WHERE NOT EXISTS (SELECT FROM appended) \
        RETURNING id) \
    SELECT id FROM appended UNION ALL SELECT id FROM inserted";

/// Stores `rows` (digest rows, in a transaction of `connection`'s): the id of the digest
/// each went into, in order.
pub(crate) async fn gather(
    connection: &mut PgConnection,
    rows: &[&NewMessage],
) -> Result<Vec<MessageId>, StoreError> {
    let mut keys: Vec<String> = rows
        .iter()
        .map(|row| format!("{}/{}/{}", row.template_id, row.recipient, row.method))
        .collect();
    keys.sort();
    keys.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended(key, $2)) \
         FROM (SELECT key FROM UNNEST($1::text[]) WITH ORDINALITY AS k(key, position) \
               ORDER BY position) AS sorted",
    )
    .bind(&keys)
    .bind(DIGEST_LOCK_SEED)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let payload = serde_json::to_string(&row.payload)
            .map_err(|err| StoreError::Other(format!("encoding a payload: {err}")))?;
        let id: Uuid = sqlx::query_scalar(GATHER_STATEMENT)
            .bind(row.id.as_uuid())
            .bind(row.template_id.as_uuid())
            .bind(row.recipient.as_uuid())
            .bind(row.method.as_str())
            .bind(payload)
            .bind(&row.targets)
            .bind(&row.created_by)
            .bind(row.created_at)
            .bind(row.send_after)
            .fetch_one(&mut *connection)
            .await
            .map_err(crate::queue::insert_error)?;
        ids.push(id.into());
    }
    Ok(ids)
}

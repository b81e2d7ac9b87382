//! The message queue (DESIGN §5): batch enqueue, `FOR UPDATE SKIP LOCKED` leases, bulk
//! write-back, inhibition and purge under an advisory lock.
//!
//! **Enqueue** is one statement per batch (`insert_batch`, from `UNNEST`; `insert_one` with
//! plain parameters for a single message). It claims the dedupe hashes in `message_dedupe`
//! (`ON CONFLICT DO NOTHING`, in array order, so a later duplicate in the same batch loses),
//! inserts the messages whose claim went in, and calls `pg_notify('herald_wakeup', …)` in the
//! same statement, so the wake-up costs no commit of its own and is delivered only if the rows
//! are (`MessageQueue::wakes_notifiers` is true here). Message ids are time-ordered
//! (`MessageId::time_ordered`), so new rows land at the right edge of the primary key.
//!
//! **A claiming enqueue** (idempotency keys) is first the same kind of statement with the keys
//! inserted along and no `ON CONFLICT` anywhere (`enqueue_claiming_fresh`): new keys and new
//! messages, the common case, cost what an enqueue costs. Anything already stored fails it
//! whole, and a transaction that claims, inserts and answers step by step runs instead.
//!
//! **The lease** ([`lease_statement`]) is one `UPDATE … FROM` the oldest rows of three
//! `SELECT … FOR UPDATE SKIP LOCKED`: pending messages, failures whose retry time has come, and
//! expired leases. Each walks a partial index of its own (one per leasable kind, see the
//! migrations), so live leases and failures still waiting for their retry are never read, and
//! two notifiers never lease the same row. Pending messages and failures are selected per
//! method, so the methods a lease leaves queued are never read either. Taking over an expired lease counts an expiry
//! (`lease_expiries`); the one that reaches the maximum moves the message to
//! `permanent_failure` in the same statement instead of leasing it (`Message::lease`).
//!
//! **A throttled lease** ([`throttled_lease_statement`], when the notifier has a per-recipient
//! rate limit) chooses the same rows, then counts the pending ones per recipient and method in
//! `rate_counts` and holds back those past the window's limit, in the same statement; the plain
//! lease is left as it is for a notifier without a throttle.
//!
//! **Write-back** ([`WRITE_BACK_STATEMENT`]) is one `UPDATE … FROM UNNEST` per buffer of
//! results. It only touches rows still holding the lease the change completes, so a result
//! that arrives after the lease expired and another notifier took the message changes
//! nothing. Both statements are public so `tests/it/postgres_plans.rs` can check their plans
//! (generic plans, statistics from a quiet moment).
//!
//! **Purge** holds `pg_try_advisory_lock(PURGE_LOCK_KEY)` on a connection of its own for the
//! whole purge, so one replica purges at a time, and deletes in chunks of [`PURGE_CHUNK_ROWS`]
//! (each its own transaction, freeing its rows' dedupe claims in the same statement),
//! [`PURGE_CHUNK_PAUSE`] apart, so a large purge never holds up the enqueues and leases running
//! beside it. The lock is released at the end, or by the server when the connection is lost;
//! a purge cut off half-way leaves whole chunks and the next one deletes the rest.
//! `PgStore::hold_purge_lock` holds the lock for tests.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{
    CallerKey, CancelOutcome, ClaimAnswers, EnqueueOutcome, EnqueueTransaction, HeldLease,
    IDEMPOTENCY_WINDOW, KeyClaim, LeaseRequest, MessageFilter, MessageQueue, NewMessage,
    PurgeOutcome, StoreError, StoredAnswer, ThrottleWindow, ThrottledLease,
};
use herald_domain::message::{
    GIVEN_BACK_REASON, StatusChange, lease_expiries_reason, leased_by_reason,
};
use herald_domain::{DedupeHash, Message, MessageId, MessageStatus, Method, Payload, UserId};
use sqlx::types::Json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::PgStore;
use crate::error::store_error;

/// The advisory lock key purges take (`pg_try_advisory_lock`, for the whole purge), so one
/// replica purges at a time. Any 64-bit constant works; this one spells "herald p" in ASCII.
pub const PURGE_LOCK_KEY: i64 = 0x6865_7261_6c64_2070;

/// How many messages a listing returns when the filter gives no limit (as the memory store).
const DEFAULT_LIST_LIMIT: i64 = 100;

/// The columns every message query selects or returns, in [`MessageRow`]'s order.
const MESSAGE_COLUMNS: &str = "id, template_id, recipient, method::text AS method, \
    status::text AS status, status_reason, attempt_count, payload, targets, created_by, \
    created_at, updated_at, leased_until, next_retry_after, queued_seconds, lease_expiries, \
    dedupe_hash, digest";

/// The statement a lease runs: `$1` now (`timestamptz`), `$2` the lease's end (`timestamptz`),
/// `$3` the maximum attempts (`int4`), `$4` the count (`int8`), `$5` the maximum lease
/// expiries (`int4`), `$6` the reason of a message given up, a `format` string taking the
/// expiries (`text`), `$7` the methods left queued (`text[]`, usually empty), `$8` the status
/// reason of a leased message (`text`, naming the notifier); returns the messages it changed:
/// the leased ones, and those given up
/// (`permanent_failure`). Public so that its plan can be checked (`PREPARE` +
/// `EXPLAIN EXECUTE`).
#[must_use]
pub fn lease_statement() -> &'static str {
    &LEASE_STATEMENT
}

/// The three selections both lease statements start from, as CTEs `pending`, `retries` and
/// `expired`: the rule of `Message::is_leasable`, each kind on its own partial index (migration
/// 0005), oldest first, up to `$4`, `FOR UPDATE SKIP LOCKED`. Each selects `id, created_at`, then
/// its own `extra` columns (pending, retries, expired), then `expired` and `give_up` (an expired
/// lease reaching `$5` expiries).
///
/// Pending messages and failures, the kinds that pile up, are selected per method
/// ([`per_method`]); expired leases, at most what crashed replicas held, in one selection.
fn due_selections(extra: [&str; 3]) -> String {
    let [pending, retries, expired] = extra;
    let due = "AND COALESCE(next_retry_after, '-infinity'::timestamptz) <= $1";
    format!(
        "{}, {}, \
         expired AS ( \
             SELECT id, created_at{expired}, true AS expired, lease_expiries + 1 >= $5 AS give_up \
             FROM messages \
             WHERE status = 'leased' AND attempt_count < $3 \
               AND method::text <> ALL($7::text[]) \
               AND COALESCE(leased_until, '-infinity'::timestamptz) < $1 \
             ORDER BY created_at, id LIMIT $4 \
             FOR UPDATE SKIP LOCKED)",
        per_method("pending", "pending", due, pending),
        per_method("retries", "temporary_failure", due, retries),
    )
}

/// The CTE `name`: the messages in `status` meeting `condition`, selected per method as CTEs
/// `<name>_<method>`, each up to `$4` of the oldest of its method from the kind's partial index
/// for that method (migration 0017), `FOR UPDATE SKIP LOCKED`, and a method the lease leaves
/// queued (`$7`) not read at all. So a lease that skips a slow method's messages never walks
/// past them, however many of them are oldest.
///
/// A method's messages are those of none of the other methods ([`of_method`]), as its index
/// says: planned with no statistics, `method = 'webhook'` counts as one row in two hundred, so
/// the method's whole index read and sorted looked as cheap as walking it in order, while
/// `method <> 'smtp' AND method <> 'inbox'` counts as nearly every row, as the pending index
/// did before it was split.
fn per_method(name: &str, status: &str, condition: &str, extra: &str) -> String {
    let selections = Method::ALL.map(|method| {
        let of_method = of_method(method);
        let method = method.as_str();
        format!(
            "{name}_{method} AS ( \
                 SELECT id, created_at{extra}, false AS expired, false AS give_up \
                 FROM messages \
                 WHERE status = '{status}' AND {of_method} \
                   AND '{method}' <> ALL($7::text[]) AND attempt_count < $3 {condition} \
                 ORDER BY created_at, id LIMIT $4 \
                 FOR UPDATE SKIP LOCKED)"
        )
    });
    let union = Method::ALL
        .map(|method| format!("SELECT * FROM {name}_{}", method.as_str()))
        .join(" UNION ALL ");
    format!("{}, {name} AS ({union})", selections.join(", "))
}

/// The messages of `method`, as the predicates of migration 0017's partial indexes say it:
/// `method <> '<other>'` for each other method.
fn of_method(method: Method) -> String {
    Method::ALL
        .into_iter()
        .filter(|other| *other != method)
        .map(|other| format!("method <> '{}'", other.as_str()))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// See [`lease_statement`].
static LEASE_STATEMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH {}, \
         leasable AS ( \
             SELECT id, expired, give_up FROM ( \
                 SELECT * FROM pending UNION ALL SELECT * FROM retries \
                 UNION ALL SELECT * FROM expired) AS due \
             ORDER BY created_at, id LIMIT $4) \
         UPDATE messages AS m SET \
             status = CASE WHEN leasable.give_up THEN 'permanent_failure'::message_status \
                 ELSE 'leased'::message_status END, \
             status_reason = CASE WHEN leasable.give_up THEN format($6, m.lease_expiries + 1) \
                 ELSE $8 END, \
             leased_until = CASE WHEN leasable.give_up THEN NULL ELSE $2 END, \
             next_retry_after = CASE WHEN leasable.give_up THEN NULL ELSE m.next_retry_after END, \
             lease_expiries = m.lease_expiries + leasable.expired::int4, \
             queued_seconds = GREATEST(FLOOR(EXTRACT(EPOCH FROM ($1 - m.updated_at)) * 1000) / 1000, 0), \
             updated_at = $1 \
         FROM leasable WHERE m.id = leasable.id \
         RETURNING {}",
        due_selections(["", "", ""]),
        MESSAGE_COLUMNS
            .split(", ")
            .map(|column| format!("m.{column}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
});

/// The statement a throttled lease runs: [`lease_statement`]'s `$1`–`$8`, then `$9` the
/// throttle window's start, `$10` its end (`timestamptz`), `$11` the limit (`int8`), `$12` the
/// reason of a message held back (`text`). Returns the messages it changed: leased, given up,
/// and held back (still `pending`). Public for plan checks like [`lease_statement`].
///
/// It chooses as the plain lease does (the same three `SKIP LOCKED` selections, the oldest of
/// them), then counts the pending ones chosen per recipient and method in `rate_counts` (scope
/// `throttle:<method>`) in one upsert, and leases only the oldest of each that still fit the
/// window; the rest are held back, pending until the window's end. The upsert takes each
/// counter's row lock and reads its newest version even when that was committed after the
/// statement began, so concurrent leases on any replica are counted one after the other: the
/// places it finds free (`limit − (count − wanted)`) are its own. Counters are upserted in
/// key order, so two leases cannot deadlock on them. Only the counters past the limit
/// (`past_limit`, usually none) are joined to the chosen rows, and the messages held back
/// (`over`) are found once (`MATERIALIZED`): with the row estimates of a fresh table the
/// planner joins in nested loops, which would otherwise find them again for each row.
#[must_use]
pub fn throttled_lease_statement() -> &'static str {
    &THROTTLED_LEASE_STATEMENT
}

/// See [`throttled_lease_statement`].
static THROTTLED_LEASE_STATEMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH {}, \
         chosen AS ( \
             SELECT * FROM ( \
                 SELECT * FROM pending UNION ALL SELECT * FROM retries \
                 UNION ALL SELECT * FROM expired) AS due \
             ORDER BY created_at, id LIMIT $4), \
         ranked AS ( \
             SELECT id, 'throttle:' || method::text AS scope, recipient, \
                 row_number() OVER (PARTITION BY recipient, method ORDER BY created_at, id) \
                     AS place, \
                 count(*) OVER (PARTITION BY recipient, method) AS wanted \
             FROM chosen WHERE counted), \
         counted AS ( \
             INSERT INTO rate_counts AS held (scope, user_id, window_start, count) \
             SELECT DISTINCT scope, recipient, $9::timestamptz, wanted FROM ranked \
             ORDER BY scope, recipient \
             ON CONFLICT ON CONSTRAINT rate_counts_pkey DO UPDATE SET \
                 count = CASE WHEN held.window_start < excluded.window_start \
                     THEN excluded.count ELSE held.count + excluded.count END, \
                 window_start = GREATEST(held.window_start, excluded.window_start) \
             RETURNING scope, user_id, count), \
         past_limit AS MATERIALIZED ( \
             SELECT scope, user_id, count FROM counted WHERE count > $11), \
         over AS MATERIALIZED ( \
             SELECT ranked.id FROM ranked \
             JOIN past_limit ON past_limit.scope = ranked.scope \
                 AND past_limit.user_id = ranked.recipient \
             WHERE ranked.place > $11 - (past_limit.count - ranked.wanted)), \
         leasable AS ( \
             SELECT chosen.id, chosen.expired, chosen.give_up, over.id IS NOT NULL AS hold \
             FROM chosen LEFT JOIN over ON over.id = chosen.id) \
         UPDATE messages AS m SET \
             status = CASE WHEN leasable.give_up THEN 'permanent_failure'::message_status \
                 WHEN leasable.hold THEN 'pending'::message_status \
                 ELSE 'leased'::message_status END, \
             status_reason = CASE WHEN leasable.give_up THEN format($6, m.lease_expiries + 1) \
                 WHEN leasable.hold THEN $12 ELSE $8 END, \
             leased_until = CASE WHEN leasable.give_up OR leasable.hold THEN NULL ELSE $2 END, \
             next_retry_after = CASE WHEN leasable.give_up THEN NULL \
                 WHEN leasable.hold THEN $10 ELSE m.next_retry_after END, \
             lease_expiries = m.lease_expiries + leasable.expired::int4, \
             queued_seconds = CASE WHEN leasable.hold THEN m.queued_seconds ELSE \
                 GREATEST(FLOOR(EXTRACT(EPOCH FROM ($1 - m.updated_at)) * 1000) / 1000, 0) END, \
             updated_at = CASE WHEN leasable.hold THEN m.updated_at ELSE $1 END \
         FROM leasable WHERE m.id = leasable.id \
         RETURNING {}",
        due_selections([
            ", recipient, method, true AS counted",
            ", recipient, method, false AS counted",
            ", recipient, method, false AS counted",
        ]),
        MESSAGE_COLUMNS
            .split(", ")
            .map(|column| format!("m.{column}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
});

/// The statement a write-back runs: `$1`–`$7` the changes as arrays (ids, statuses, reasons,
/// attempt counts, retry times, change times, the leases they complete); public for plan checks
/// like [`lease_statement`]. Each message is found by its id (a nested loop over the primary
/// key): the "still leased" check compares the status as text, which no partial index's
/// predicate follows from, so the planner cannot choose to read all of one instead (every
/// lease, or every queued message) and hash-join it — with statistics from a quiet moment the
/// partial indexes look empty, and that plan reads many times the rows it writes back.
pub const WRITE_BACK_STATEMENT: &str = "UPDATE messages AS m SET \
         status = c.status::message_status, \
         status_reason = c.reason, \
         attempt_count = c.attempts, \
         next_retry_after = c.next_retry, \
         leased_until = NULL, \
         updated_at = c.at \
     FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int4[], $5::timestamptz[], \
                 $6::timestamptz[], $7::timestamptz[]) \
          AS c(id, status, reason, attempts, next_retry, at, lease) \
     WHERE m.id = c.id \
       AND m.status::text = 'leased' \
       AND (c.lease IS NULL OR m.leased_until = c.lease)";

/// The statement that extends held leases: `$1` the ids, `$2` the leases held (arrays), `$3`
/// the new end; returns the ids extended. Found by id, like [`WRITE_BACK_STATEMENT`].
const EXTEND_LEASES_STATEMENT: &str = "UPDATE messages AS m SET leased_until = $3 \
     FROM UNNEST($1::uuid[], $2::timestamptz[]) AS h(id, lease) \
     WHERE m.id = h.id AND m.status::text = 'leased' AND m.leased_until = h.lease \
     RETURNING m.id";

/// The statement that gives held leases back: `$1` the ids, `$2` the leases held, `$3` the
/// reason a given-back message shows (`GIVEN_BACK_REASON`). A message
/// never attempted is pending again, one attempted before a temporary failure (its retry time
/// has come, since it was leased), as `Message::give_back`.
const GIVE_BACK_STATEMENT: &str = "UPDATE messages AS m SET \
         status = CASE WHEN m.attempt_count = 0 THEN 'pending'::message_status \
                       ELSE 'temporary_failure'::message_status END, \
         status_reason = $3, \
         leased_until = NULL \
     FROM UNNEST($1::uuid[], $2::timestamptz[]) AS h(id, lease) \
     WHERE m.id = h.id AND m.status::text = 'leased' AND m.leased_until = h.lease";

/// A `messages` row as stored.
#[derive(Debug, sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    template_id: Uuid,
    recipient: Uuid,
    method: String,
    status: String,
    status_reason: Option<String>,
    attempt_count: i32,
    payload: Json<Payload>,
    targets: Vec<Uuid>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    leased_until: Option<DateTime<Utc>>,
    next_retry_after: Option<DateTime<Utc>>,
    queued_seconds: f64,
    lease_expiries: i32,
    dedupe_hash: Option<String>,
    digest: bool,
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;

    fn try_from(row: MessageRow) -> Result<Self, StoreError> {
        let corrupt = |err: herald_domain::InvalidValue| {
            StoreError::Other(format!("message {}: {err}", row.id))
        };
        Ok(Message {
            id: row.id.into(),
            template_id: row.template_id.into(),
            recipient: row.recipient.into(),
            method: row.method.parse::<Method>().map_err(corrupt)?,
            status: row.status.parse::<MessageStatus>().map_err(corrupt)?,
            status_reason: row.status_reason,
            attempt_count: u32::try_from(row.attempt_count).unwrap_or(0),
            payload: row.payload.0,
            targets: row.targets,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            leased_until: row.leased_until,
            next_retry_after: row.next_retry_after,
            queued_seconds: row.queued_seconds,
            lease_expiries: u32::try_from(row.lease_expiries).unwrap_or(0),
            dedupe_hash: row.dedupe_hash.map(DedupeHash::from_hex),
            digest: row.digest,
        })
    }
}

fn messages(rows: Vec<MessageRow>) -> Result<Vec<Message>, StoreError> {
    rows.into_iter().map(Message::try_from).collect()
}

/// Targets travel as one text array element per message (`{uuid,uuid}`) and are cast back per
/// row: `UNNEST` of a two-dimensional array would flatten it.
fn targets_literal(targets: &[Uuid]) -> String {
    let items: Vec<String> = targets.iter().map(Uuid::to_string).collect();
    format!("{{{}}}", items.join(","))
}

/// The payload as stored: `json` text (migration 0003), which PostgreSQL only checks.
fn payload_text(payload: &Payload) -> Result<String, StoreError> {
    serde_json::to_string(payload)
        .map_err(|err| StoreError::Other(format!("encoding a payload: {err}")))
}

/// Translates an enqueue's error: a message id already stored is the caller's conflict.
pub(crate) fn insert_error(err: sqlx::Error) -> StoreError {
    match crate::error::unique_violation(&err) {
        Some("messages_pkey") => {
            StoreError::Conflict("id: a message with this id is already queued".to_owned())
        }
        _ => store_error(err),
    }
}

impl PgStore {
    /// Holds the purge lock on a dedicated connection until the holder is dropped, as another
    /// replica purging would. For tests and operators' maintenance windows.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when no connection can be made; [`StoreError::Conflict`]
    /// when someone else holds the lock.
    pub async fn hold_purge_lock(&self) -> Result<PurgeLockHolder, StoreError> {
        let options = self.pool.connect_options();
        let mut connection = PgConnection::connect_with(&options)
            .await
            .map_err(store_error)?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(PURGE_LOCK_KEY)
            .fetch_one(&mut connection)
            .await
            .map_err(store_error)?;
        if !locked {
            return Err(StoreError::Conflict(
                "the purge lock is held elsewhere".to_owned(),
            ));
        }
        Ok(PurgeLockHolder { connection })
    }

    /// Stores a batch of messages in one statement; returns the ids of those that went in.
    ///
    /// The statement is atomic by itself (a clash on a message id fails it all, claims
    /// included). `claimed` claims the hashes in `message_dedupe` in array order: a hash stored
    /// already, or claimed earlier in this batch, is skipped, and its message is not stored
    /// (a duplicate). The arrays are unnested twice rather than once into a shared CTE, which
    /// PostgreSQL would materialise, at a cost per row.
    ///
    /// When a row went in, the same statement wakes the notifiers (NOTIFY is delivered at
    /// commit): a NOTIFY of its own would cost a second commit, and so a second WAL flush, per
    /// call. `woken` holds a volatile call, so it is never inlined, and the join makes it run.
    async fn insert_batch(&self, batch: &[NewMessage]) -> Result<Vec<Uuid>, StoreError> {
        let mut connection = self.connection().await?;
        let queued = insert_batch(&mut connection, batch).await?;
        connection.done();
        Ok(queued)
    }

    /// [`PgStore::insert_batch`] for one message, with plain parameters: the same claim, insert
    /// and wake-up without nine arrays to decode and unnest, which cost more than the row
    /// itself.
    async fn insert_one(&self, message: &NewMessage) -> Result<Vec<Uuid>, StoreError> {
        let mut connection = self.connection().await?;
        let queued = insert_one(&mut connection, message).await?;
        connection.done();
        Ok(queued)
    }

    /// Applies a buffer of changes in one statement, only to messages still holding the lease
    /// each change completes.
    ///
    /// The join with the arrays is cheap (a nested loop over `messages_pkey`): the cost is in
    /// the rows' new versions. Measured per row, this statement costs what a bare
    /// `UPDATE … WHERE id = ANY($1)` setting `sent` does, so a buffer of sends needs no statement
    /// of its own.
    async fn write_back(&self, changes: &[StatusChange]) -> Result<u64, StoreError> {
        if changes.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = changes.iter().map(|c| *c.id.as_uuid()).collect();
        let statuses: Vec<&str> = changes.iter().map(|c| c.status.as_str()).collect();
        let reasons: Vec<Option<&str>> =
            changes.iter().map(|c| c.status_reason.as_deref()).collect();
        let attempts: Vec<i32> = changes
            .iter()
            .map(|c| i32::try_from(c.attempt_count).unwrap_or(i32::MAX))
            .collect();
        let retries: Vec<Option<DateTime<Utc>>> =
            changes.iter().map(|c| c.next_retry_after).collect();
        let ats: Vec<DateTime<Utc>> = changes.iter().map(|c| c.at).collect();
        let leases: Vec<Option<DateTime<Utc>>> = changes.iter().map(|c| c.lease).collect();
        let mut connection = self.connection().await?;
        let result = sqlx::query(WRITE_BACK_STATEMENT)
            .bind(&ids)
            .bind(&statuses)
            .bind(&reasons)
            .bind(&attempts)
            .bind(&retries)
            .bind(&ats)
            .bind(&leases)
            .execute(&mut *connection)
            .await
            .map_err(store_error)?;
        connection.done();
        Ok(result.rows_affected())
    }
}

/// The purge lock held on its own connection. [`PurgeLockHolder::release`] releases it at once;
/// dropping the holder closes the connection, and the server releases the lock when it notices.
#[derive(Debug)]
pub struct PurgeLockHolder {
    connection: PgConnection,
}

impl PurgeLockHolder {
    /// Releases the lock and closes the connection; the next purge anywhere can take it.
    ///
    /// # Errors
    /// [`StoreError`] when the connection failed (the server then drops the lock itself).
    pub async fn release(mut self) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PURGE_LOCK_KEY)
            .execute(&mut self.connection)
            .await
            .map_err(store_error)?;
        self.connection.close().await.map_err(store_error)
    }
}

/// The most rows one statement of a purge deletes. Each chunk is a transaction of its own, and
/// its commit flushes its WAL (after a checkpoint, a full-page image of every heap page it
/// touched): small enough that an enqueue committing beside it never waits long behind that
/// flush, large enough that the index descent and round trip per chunk stay a small part of
/// its cost (chosen with the scale benchmark's purge phase). A purge cut off half-way leaves
/// every chunk whole.
pub const PURGE_CHUNK_ROWS: i64 = 100;

/// The pause between two chunks of a purge, in which the live traffic has the server to
/// itself: a purge is never urgent, an enqueue always is. Long enough that the purge takes the
/// smaller share of a core while it runs, short enough that a week of history still goes in
/// minutes (chosen with the scale benchmark's purge phase).
pub const PURGE_CHUNK_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// One chunk of a purge: `$1` the cutoff, `$2` where the previous chunk ended (its newest
/// `updated_at`, or null for the first chunk), `$3` the chunk's size. Deletes up to `$3` of the
/// oldest messages not updated since `$1`, from `messages_updated_at_idx`, and frees their
/// dedupe claims in the same statement; returns how many it deleted and the newest `updated_at`
/// among them. Starting from `$2` keeps a chunk from walking the index entries of the rows
/// earlier chunks deleted. Rows another transaction holds (a lease) are skipped
/// (`SKIP LOCKED`): they are being changed, so no longer expired, or are left for the next
/// purge.
const PURGE_CHUNK_STATEMENT: &str = "WITH chunk AS ( \
         SELECT id FROM messages \
         WHERE updated_at < $1 \
           AND updated_at >= COALESCE($2::timestamptz, '-infinity'::timestamptz) \
         ORDER BY updated_at LIMIT $3 \
         FOR UPDATE SKIP LOCKED), \
     purged AS ( \
         DELETE FROM messages AS m USING chunk WHERE m.id = chunk.id \
         RETURNING m.dedupe_hash, m.updated_at), \
     freed AS ( \
         DELETE FROM message_dedupe \
         WHERE dedupe_hash IN (SELECT dedupe_hash FROM purged)) \
     SELECT count(*), max(updated_at) FROM purged";

/// One chunk of the idempotency keys' purge, as [`PURGE_CHUNK_STATEMENT`] is for messages: up
/// to `$3` of the keys claimed before `$1`, from the index on `claimed_at`, starting where the
/// previous chunk ended (`$2`).
const PURGE_KEYS_CHUNK_STATEMENT: &str = "WITH chunk AS ( \
         SELECT caller, key FROM idempotency_keys \
         WHERE claimed_at < $1 \
           AND claimed_at >= COALESCE($2::timestamptz, '-infinity'::timestamptz) \
         ORDER BY claimed_at LIMIT $3 \
         FOR UPDATE SKIP LOCKED), \
     purged AS ( \
         DELETE FROM idempotency_keys AS k USING chunk \
         WHERE k.caller = chunk.caller AND k.key = chunk.key \
         RETURNING k.claimed_at) \
     SELECT count(*), max(claimed_at) FROM purged";

/// Runs `statement` ([`PURGE_CHUNK_STATEMENT`] or [`PURGE_KEYS_CHUNK_STATEMENT`]) until it
/// deletes a chunk short of [`PURGE_CHUNK_ROWS`], [`PURGE_CHUNK_PAUSE`] apart, each chunk its
/// own statement and so its own transaction; returns how many rows it deleted.
async fn delete_in_chunks(
    connection: &mut PgConnection,
    statement: &'static str,
    cutoff: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut deleted_in_all: u64 = 0;
    let mut from: Option<DateTime<Utc>> = None;
    loop {
        let (deleted, newest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(statement)
            .bind(cutoff)
            .bind(from)
            .bind(PURGE_CHUNK_ROWS)
            .fetch_one(&mut *connection)
            .await
            .map_err(store_error)?;
        deleted_in_all += u64::try_from(deleted).unwrap_or(0);
        // A chunk short of its size walked every expired row left: the limit counts only the
        // rows it could lock.
        if deleted < PURGE_CHUNK_ROWS {
            return Ok(deleted_in_all);
        }
        from = newest;
        tokio::time::sleep(PURGE_CHUNK_PAUSE).await;
    }
}

/// A lease statement with its first parameters, `$1`–`$8`, bound from `request`: now, the
/// lease's end, the most attempts, the count, the most lease expiries, the give-up reason's
/// format, the methods skipped and the "leased by" reason.
fn bind_lease<'q>(
    statement: &'q str,
    request: &LeaseRequest,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, MessageRow, sqlx::postgres::PgArguments> {
    sqlx::query_as(statement)
        .bind(request.now)
        .bind(request.now + request.lease_period)
        .bind(i32::try_from(request.max_attempts).unwrap_or(i32::MAX))
        .bind(i64::try_from(request.count).unwrap_or(i64::MAX))
        .bind(i32::try_from(request.max_lease_expiries).unwrap_or(i32::MAX))
        .bind(lease_expiries_reason("%s"))
        .bind(request.skip.names())
        .bind(leased_by_reason(&request.notifier))
}

/// A batch as the arrays its `UNNEST` statements take.
struct BatchColumns<'a> {
    ids: Vec<Uuid>,
    templates: Vec<Uuid>,
    recipients: Vec<Uuid>,
    methods: Vec<&'a str>,
    payloads: Vec<String>,
    targets: Vec<String>,
    created_by: Vec<&'a str>,
    created_at: Vec<DateTime<Utc>>,
    hashes: Vec<Option<&'a str>>,
    send_after: Vec<Option<DateTime<Utc>>>,
}

impl<'a> BatchColumns<'a> {
    fn of(batch: &'a [NewMessage]) -> Result<Self, StoreError> {
        Ok(Self {
            ids: batch.iter().map(|m| *m.id.as_uuid()).collect(),
            templates: batch.iter().map(|m| *m.template_id.as_uuid()).collect(),
            recipients: batch.iter().map(|m| *m.recipient.as_uuid()).collect(),
            methods: batch.iter().map(|m| m.method.as_str()).collect(),
            payloads: batch
                .iter()
                .map(|m| payload_text(&m.payload))
                .collect::<Result<_, _>>()?,
            targets: batch.iter().map(|m| targets_literal(&m.targets)).collect(),
            created_by: batch.iter().map(|m| m.created_by.as_str()).collect(),
            created_at: batch.iter().map(|m| m.created_at).collect(),
            hashes: batch
                .iter()
                .map(|m| m.dedupe_hash.as_ref().map(DedupeHash::as_str))
                .collect(),
            send_after: batch.iter().map(|m| m.send_after).collect(),
        })
    }
}

/// The batch's messages from `$1`–`$9` and `$11` (arrays: ids, templates, recipients, methods,
/// payloads, targets, creators, creation times, dedupe hashes, send-after times), as both batch
/// statements insert them; `{only}` is the rest of the `WHERE` (at least `true`).
const INSERT_MESSAGES: &str = "INSERT INTO messages (id, template_id, recipient, method, payload, \
         targets, created_by, created_at, updated_at, dedupe_hash, next_retry_after) \
     SELECT id, template_id, recipient, method::notification_method, payload::json, \
            targets::uuid[], created_by, created_at, created_at, dedupe_hash, send_after \
     FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::timestamptz[], $9::text[], $11::timestamptz[]) \
          AS b(id, template_id, recipient, method, payload, targets, created_by, created_at, \
               dedupe_hash, send_after) \
     WHERE {only} \
     RETURNING id";

/// The end of both batch statements: `pg_notify($10, …)` once any row went in, and the ids.
const WAKE_AND_RETURN: &str = "woken AS ( \
         SELECT pg_notify($10, '') FROM (SELECT 1 FROM inserted LIMIT 1) AS any_row) \
     SELECT inserted.id FROM inserted LEFT JOIN woken ON true";

/// [`PgStore::insert_batch`]'s statement: dedupe hashes claimed in array order (`ON CONFLICT
/// DO NOTHING`), the messages whose claim went in.
static INSERT_BATCH_STATEMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH claimed AS ( \
             INSERT INTO message_dedupe (dedupe_hash, message_id) \
             SELECT dedupe_hash, id \
             FROM UNNEST($1::uuid[], $9::text[]) WITH ORDINALITY \
                  AS c(id, dedupe_hash, position) \
             WHERE dedupe_hash IS NOT NULL \
             ORDER BY position \
             ON CONFLICT (dedupe_hash) DO NOTHING \
             RETURNING message_id), \
         inserted AS ({}), {WAKE_AND_RETURN}",
        INSERT_MESSAGES.replace(
            "{only}",
            "dedupe_hash IS NULL OR id IN (SELECT message_id FROM claimed)"
        )
    )
});

/// [`enqueue_claiming_fresh`]'s statement: keys (`$12`–`$16`), dedupe hashes and messages, all
/// with plain INSERTs.
static CLAIMING_FRESH_STATEMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH keys AS ( \
             INSERT INTO idempotency_keys (caller, key, fingerprint, answer, claimed_at) \
             SELECT caller, key, fingerprint, answer::jsonb, $16 \
             FROM UNNEST($12::uuid[], $13::text[], $14::text[], $15::text[]) \
                  AS k(caller, key, fingerprint, answer) \
             ORDER BY caller, key), \
         hashes AS ( \
             INSERT INTO message_dedupe (dedupe_hash, message_id) \
             SELECT dedupe_hash, id FROM UNNEST($1::uuid[], $9::text[]) AS c(id, dedupe_hash) \
             WHERE dedupe_hash IS NOT NULL \
             ORDER BY dedupe_hash), \
         inserted AS ({}), {WAKE_AND_RETURN}",
        INSERT_MESSAGES.replace("{only}", "true")
    )
});

/// A batch statement (its ids returned) being bound.
type BatchQuery<'q> =
    sqlx::query::QueryScalar<'q, sqlx::Postgres, Uuid, sqlx::postgres::PgArguments>;

impl BatchColumns<'_> {
    /// Binds `$1`–`$11` of the batch statements.
    fn bind<'q>(&'q self, query: BatchQuery<'q>) -> BatchQuery<'q> {
        query
            .bind(&self.ids)
            .bind(&self.templates)
            .bind(&self.recipients)
            .bind(&self.methods)
            .bind(&self.payloads)
            .bind(&self.targets)
            .bind(&self.created_by)
            .bind(&self.created_at)
            .bind(&self.hashes)
            .bind(crate::signals::WAKEUP_CHANNEL)
            .bind(&self.send_after)
    }
}

/// [`PgStore::insert_batch`]'s statement, on `connection` (a transaction's, for a claiming
/// enqueue).
async fn insert_batch(
    connection: &mut PgConnection,
    batch: &[NewMessage],
) -> Result<Vec<Uuid>, StoreError> {
    let columns = BatchColumns::of(batch)?;
    columns
        .bind(sqlx::query_scalar(&INSERT_BATCH_STATEMENT))
        .fetch_all(&mut *connection)
        .await
        .map_err(insert_error)
}

/// A claiming enqueue's first try: one statement, no transaction around it, storing every key
/// (with the answer of every message queued), dedupe hash and message with a plain `INSERT`.
/// When any of them is stored already (a key claimed, even outside the window; a message
/// queued today with the same dedupe hash; a repeat within the batch), its unique violation
/// fails the whole statement, nothing is stored, and `Ok(None)` sends the enqueue through the
/// transaction that sorts those cases out. Keys and hashes go in sorted order, so two such
/// statements over the same ones wait for each other rather than deadlock.
async fn enqueue_claiming_fresh(
    pool: &sqlx::PgPool,
    batch: &[NewMessage],
    claims: &[KeyClaim],
    now: DateTime<Utc>,
    answers: ClaimAnswers<'_>,
) -> Result<Option<Vec<Uuid>>, StoreError> {
    let all_queued: Vec<EnqueueOutcome> = batch
        .iter()
        .map(|message| EnqueueOutcome::Queued(message.id))
        .collect();
    let answers = answers(&all_queued);
    if answers.len() != claims.len() {
        return Err(StoreError::Other(format!(
            "{} answers for {} idempotency keys",
            answers.len(),
            claims.len()
        )));
    }
    let callers: Vec<Uuid> = claims.iter().map(|c| caller_uuid(&c.key)).collect();
    let keys: Vec<&str> = claims.iter().map(|c| c.key.key.as_str()).collect();
    let fingerprints: Vec<&str> = claims.iter().map(|c| c.fingerprint.as_str()).collect();
    let columns = BatchColumns::of(batch)?;
    let stored = columns
        .bind(sqlx::query_scalar(&CLAIMING_FRESH_STATEMENT))
        .bind(&callers)
        .bind(&keys)
        .bind(&fingerprints)
        .bind(&answers)
        .bind(now)
        .fetch_all(pool)
        .await;
    match stored {
        Ok(queued) => Ok(Some(queued)),
        Err(err) if crate::error::unique_violation(&err).is_some() => Ok(None),
        Err(err) => Err(store_error(err)),
    }
}

/// [`PgStore::insert_one`]'s statement, on `connection` (a transaction's, for a claiming
/// enqueue).
async fn insert_one(
    connection: &mut PgConnection,
    message: &NewMessage,
) -> Result<Vec<Uuid>, StoreError> {
    let queued = sqlx::query_scalar(
        "WITH claimed AS ( \
             INSERT INTO message_dedupe (dedupe_hash, message_id) \
             SELECT $9, $1 WHERE $9 IS NOT NULL \
             ON CONFLICT (dedupe_hash) DO NOTHING \
             RETURNING message_id), \
         inserted AS ( \
             INSERT INTO messages (id, template_id, recipient, method, payload, targets, \
                 created_by, created_at, updated_at, dedupe_hash, next_retry_after) \
             SELECT $1, $2, $3, $4::notification_method, $5::json, $6, $7, $8, $8, $9, $11 \
             WHERE $9 IS NULL OR EXISTS (SELECT FROM claimed) \
             RETURNING id), \
         woken AS ( \
             SELECT pg_notify($10, '') FROM (SELECT 1 FROM inserted LIMIT 1) AS any_row) \
         SELECT inserted.id FROM inserted LEFT JOIN woken ON true",
    )
    .bind(message.id.as_uuid())
    .bind(message.template_id.as_uuid())
    .bind(message.recipient.as_uuid())
    .bind(message.method.as_str())
    .bind(payload_text(&message.payload)?)
    .bind(&message.targets)
    .bind(&message.created_by)
    .bind(message.created_at)
    .bind(message.dedupe_hash.as_ref().map(DedupeHash::as_str))
    .bind(crate::signals::WAKEUP_CHANNEL)
    .bind(message.send_after)
    .fetch_all(&mut *connection)
    .await
    .map_err(insert_error)?;
    Ok(queued)
}

/// Stores `batch` as `enqueue` does on `connection`, which is a transaction's when the batch
/// holds a digest row (`digests::gather` locks its keys until commit).
async fn store_rows(
    connection: &mut PgConnection,
    batch: &[NewMessage],
) -> Result<Vec<EnqueueOutcome>, StoreError> {
    if !batch.iter().any(|m| m.digest) {
        let queued = match batch {
            [] => Vec::new(),
            [message] => insert_one(connection, message).await?,
            _ => insert_batch(connection, batch).await?,
        };
        return Ok(outcomes(batch, queued));
    }
    let plain: Vec<NewMessage> = batch.iter().filter(|m| !m.digest).cloned().collect();
    let digest_rows: Vec<&NewMessage> = batch.iter().filter(|m| m.digest).collect();
    let queued = match plain.as_slice() {
        [] => Vec::new(),
        [message] => insert_one(connection, message).await?,
        _ => insert_batch(connection, &plain).await?,
    };
    let mut plain_outcomes = outcomes(&plain, queued).into_iter();
    let mut digests = crate::digests::gather(connection, &digest_rows)
        .await?
        .into_iter();
    batch
        .iter()
        .map(|m| {
            let next = if m.digest {
                digests.next().map(EnqueueOutcome::Queued)
            } else {
                plain_outcomes.next()
            };
            next.ok_or_else(|| StoreError::Other("an enqueue lost track of its rows".to_owned()))
        })
        .collect()
}

/// One outcome per message of `batch`, from the ids its insert returned.
fn outcomes(batch: &[NewMessage], queued: Vec<Uuid>) -> Vec<EnqueueOutcome> {
    let queued: std::collections::HashSet<Uuid> = queued.into_iter().collect();
    batch
        .iter()
        .map(|m| {
            if queued.contains(m.id.as_uuid()) {
                EnqueueOutcome::Queued(m.id)
            } else {
                EnqueueOutcome::Duplicate
            }
        })
        .collect()
}

/// [`PgStore::begin_enqueue`]'s transaction, on a connection taken as any statement's is (a
/// kept one when there is one), so a transaction held open while the enqueue reads its next
/// part does not take a connection from the reads beside it. Dropped without a commit, its
/// connection is closed, which rolls the transaction back.
struct PgEnqueue<'a> {
    /// `None` once committed.
    connection: Option<crate::connections::Connection<'a>>,
    outcomes: Vec<EnqueueOutcome>,
}

impl PgEnqueue<'_> {
    fn connection(&mut self) -> Result<&mut PgConnection, StoreError> {
        self.connection
            .as_deref_mut()
            .ok_or_else(|| StoreError::Other("the enqueue was committed already".to_owned()))
    }
}

#[async_trait]
impl EnqueueTransaction for PgEnqueue<'_> {
    async fn add(&mut self, messages: Vec<NewMessage>) -> Result<(), StoreError> {
        let outcomes = store_rows(self.connection()?, &messages).await?;
        self.outcomes.extend(outcomes);
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<Vec<EnqueueOutcome>, StoreError> {
        sqlx::query("COMMIT")
            .execute(self.connection()?)
            .await
            .map_err(store_error)?;
        if let Some(connection) = self.connection.take() {
            connection.done();
        }
        Ok(std::mem::take(&mut self.outcomes))
    }
}

impl Drop for PgEnqueue<'_> {
    fn drop(&mut self) {
        if let Some(connection) = &mut self.connection {
            connection.close_on_drop();
        }
    }
}

/// The `caller` column of a key: the nil UUID for a host's own key.
fn caller_uuid(key: &CallerKey) -> Uuid {
    key.caller.map_or(Uuid::nil(), |caller| *caller.as_uuid())
}

#[async_trait]
impl MessageQueue for PgStore {
    async fn enqueue(&self, batch: &[NewMessage]) -> Result<Vec<EnqueueOutcome>, StoreError> {
        if batch.iter().any(|m| m.digest) {
            let mut tx = self.pool.begin().await.map_err(store_error)?;
            let outcomes = store_rows(&mut tx, batch).await?;
            tx.commit().await.map_err(store_error)?;
            return Ok(outcomes);
        }
        let queued = match batch {
            [] => return Ok(Vec::new()),
            [message] => self.insert_one(message).await?,
            _ => self.insert_batch(batch).await?,
        };
        Ok(outcomes(batch, queued))
    }

    /// One transaction; each part is stored on it as `enqueue` stores a batch (its NOTIFY is
    /// delivered at commit), so only a part's rows and arrays are held at once.
    async fn begin_enqueue(&self) -> Result<Box<dyn EnqueueTransaction + '_>, StoreError> {
        let mut connection = self.connection().await?;
        sqlx::query("BEGIN")
            .execute(&mut *connection)
            .await
            .map_err(store_error)?;
        Ok(Box::new(PgEnqueue {
            connection: Some(connection),
            outcomes: Vec::new(),
        }))
    }

    /// First as one statement that stores everything only if nothing of it is stored yet
    /// (`enqueue_claiming_fresh`, the common case: new keys, new messages, no digest). Else one
    /// transaction: the keys' claim first (so a concurrent claim of one of them waits here, or
    /// makes this one wait), then the messages as `enqueue` stores them, then each key's
    /// answer. A claim older than the window is taken over in place.
    async fn enqueue_claiming(
        &self,
        batch: &[NewMessage],
        claims: &[KeyClaim],
        now: DateTime<Utc>,
        answers: ClaimAnswers<'_>,
    ) -> Result<Option<Vec<EnqueueOutcome>>, StoreError> {
        // A digest row may join an open digest: only the transaction's `store_rows` knows.
        if !batch.iter().any(|m| m.digest)
            && let Some(queued) =
                enqueue_claiming_fresh(&self.pool, batch, claims, now, answers).await?
        {
            return Ok(Some(outcomes(batch, queued)));
        }
        let callers: Vec<Uuid> = claims.iter().map(|c| caller_uuid(&c.key)).collect();
        let keys: Vec<&str> = claims.iter().map(|c| c.key.key.as_str()).collect();
        let fingerprints: Vec<&str> = claims.iter().map(|c| c.fingerprint.as_str()).collect();
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // In key order, so two batches claiming the same keys cannot deadlock.
        let claimed: i64 = sqlx::query_scalar(
            "WITH claimed AS ( \
                 INSERT INTO idempotency_keys (caller, key, fingerprint, answer, claimed_at) \
                 SELECT caller, key, fingerprint, 'null'::jsonb, $4 \
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS c(caller, key, fingerprint) \
                 ORDER BY caller, key \
                 ON CONFLICT (caller, key) DO UPDATE \
                     SET fingerprint = EXCLUDED.fingerprint, answer = EXCLUDED.answer, \
                         claimed_at = EXCLUDED.claimed_at \
                     WHERE idempotency_keys.claimed_at < $5 \
                 RETURNING 1) \
             SELECT count(*) FROM claimed",
        )
        .bind(&callers)
        .bind(&keys)
        .bind(&fingerprints)
        .bind(now)
        .bind(now - IDEMPOTENCY_WINDOW)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        if usize::try_from(claimed).ok() != Some(claims.len()) {
            tx.rollback().await.map_err(store_error)?;
            return Ok(None);
        }
        let outcomes = store_rows(&mut tx, batch).await?;
        let answers = answers(&outcomes);
        if answers.len() != claims.len() {
            return Err(StoreError::Other(format!(
                "{} answers for {} idempotency keys",
                answers.len(),
                claims.len()
            )));
        }
        sqlx::query(
            "UPDATE idempotency_keys AS k SET answer = a.answer::jsonb \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS a(caller, key, answer) \
             WHERE k.caller = a.caller AND k.key = a.key",
        )
        .bind(&callers)
        .bind(&keys)
        .bind(&answers)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(Some(outcomes))
    }

    async fn claimed_answers(
        &self,
        keys: &[CallerKey],
        since: DateTime<Utc>,
    ) -> Result<Vec<Option<StoredAnswer>>, StoreError> {
        let callers: Vec<Uuid> = keys.iter().map(caller_uuid).collect();
        let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT w.position, k.fingerprint, k.answer::text \
             FROM UNNEST($1::uuid[], $2::text[]) WITH ORDINALITY AS w(caller, key, position) \
             JOIN idempotency_keys AS k ON k.caller = w.caller AND k.key = w.key \
             WHERE k.claimed_at >= $3",
        )
        .bind(&callers)
        .bind(&names)
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let mut answers = vec![None; keys.len()];
        for (position, fingerprint, answer) in rows {
            let slot = usize::try_from(position - 1)
                .ok()
                .and_then(|index| answers.get_mut(index));
            if let Some(slot) = slot {
                *slot = Some(StoredAnswer {
                    fingerprint,
                    answer,
                });
            }
        }
        Ok(answers)
    }

    /// In chunks, as the messages' purge: under heavy API traffic an hour of keys is many
    /// rows. No lock: replicas purging at once share the rows out (`SKIP LOCKED`).
    async fn purge_idempotency_keys(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(store_error)?;
        delete_in_chunks(&mut connection, PURGE_KEYS_CHUNK_STATEMENT, cutoff).await
    }

    /// `enqueue` NOTIFYs [`crate::signals::WAKEUP_CHANNEL`], which [`crate::PgSignals`] listens
    /// on, in its own statement.
    fn wakes_notifiers(&self) -> bool {
        true
    }

    async fn lease(&self, request: LeaseRequest) -> Result<Vec<Message>, StoreError> {
        // The same rule as `Message::is_leasable`, oldest first, one kind at a time, each from
        // its own index (migration 0005): up to `count` pending, up to `count` failures whose
        // retry time has come, up to `count` expired leases; the oldest `count` of those are
        // leased. SKIP LOCKED lets concurrent notifiers take disjoint batches without waiting
        // on each other; rows locked here and not kept are free again when the statement ends.
        // Each kind's condition picks out one partial index, the only one it can be planned
        // on, so even statistics from a quiet moment (every partial index empty when last
        // vacuumed) cannot send a lease through every queued row. An expired lease taken over
        // counts an expiry, and the one reaching the maximum gives the message up instead: it
        // comes back as `permanent_failure`, and is not handed to the notifier.
        let mut connection = self.connection().await?;
        let rows: Vec<MessageRow> = bind_lease(lease_statement(), &request)
            .fetch_all(&mut *connection)
            .await
            .map_err(store_error)?;
        connection.done();
        let mut leased = messages(rows)?;
        leased.retain(|m| m.status == MessageStatus::Leased);
        leased.sort_by_key(|m| (m.created_at, *m.id.as_uuid()));
        Ok(leased)
    }

    /// [`throttled_lease_statement`]: one statement, as the plain lease.
    async fn lease_throttled(
        &self,
        request: LeaseRequest,
        throttle: &ThrottleWindow,
    ) -> Result<ThrottledLease, StoreError> {
        let mut connection = self.connection().await?;
        let rows: Vec<MessageRow> = bind_lease(throttled_lease_statement(), &request)
            .bind(throttle.start)
            .bind(throttle.end)
            .bind(i64::from(throttle.limit))
            .bind(&throttle.reason)
            .fetch_all(&mut *connection)
            .await
            .map_err(store_error)?;
        connection.done();
        let changed = messages(rows)?;
        let held_back = changed
            .iter()
            .filter(|m| m.status == MessageStatus::Pending)
            .count();
        let mut leased: Vec<Message> = changed
            .into_iter()
            .filter(|m| m.status == MessageStatus::Leased)
            .collect();
        leased.sort_by_key(|m| (m.created_at, *m.id.as_uuid()));
        Ok(ThrottledLease { leased, held_back })
    }

    async fn mark_sent(&self, changes: &[StatusChange]) -> Result<u64, StoreError> {
        self.write_back(changes).await
    }

    async fn mark_failed(&self, changes: &[StatusChange]) -> Result<u64, StoreError> {
        self.write_back(changes).await
    }

    async fn extend_leases(
        &self,
        held: &[HeldLease],
        until: DateTime<Utc>,
    ) -> Result<Vec<MessageId>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, leases) = held_columns(held);
        let mut connection = self.connection().await?;
        let extended: Vec<Uuid> = sqlx::query_scalar(EXTEND_LEASES_STATEMENT)
            .bind(&ids)
            .bind(&leases)
            .bind(until)
            .fetch_all(&mut *connection)
            .await
            .map_err(store_error)?;
        connection.done();
        Ok(extended.into_iter().map(MessageId::from_uuid).collect())
    }

    async fn give_back(&self, held: &[HeldLease]) -> Result<u64, StoreError> {
        if held.is_empty() {
            return Ok(0);
        }
        let (ids, leases) = held_columns(held);
        let mut connection = self.connection().await?;
        let result = sqlx::query(GIVE_BACK_STATEMENT)
            .bind(&ids)
            .bind(&leases)
            .bind(GIVEN_BACK_REASON)
            .execute(&mut *connection)
            .await
            .map_err(store_error)?;
        connection.done();
        Ok(result.rows_affected())
    }

    async fn inhibit_recipient(
        &self,
        recipient: UserId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE messages SET status = 'inhibited', status_reason = $2, \
                 next_retry_after = NULL, leased_until = NULL, updated_at = $3 \
             WHERE recipient = $1 AND status IN ('pending', 'leased', 'temporary_failure')",
        )
        .bind(recipient.as_uuid())
        .bind(reason)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected())
    }

    async fn cancel(&self, id: MessageId) -> Result<CancelOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // The row lock makes a concurrent lease either take the message first (it is then
        // `leased` here and stays) or skip it (SKIP LOCKED) and find it gone.
        let status: Option<String> =
            sqlx::query_scalar("SELECT status::text FROM messages WHERE id = $1 FOR UPDATE")
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
        let Some(status) = status else {
            return Ok(CancelOutcome::NotFound);
        };
        let status = status
            .parse::<MessageStatus>()
            .map_err(|err| StoreError::Other(format!("message {id}: {err}")))?;
        if status != MessageStatus::Pending {
            return Ok(CancelOutcome::NotPending(status));
        }
        sqlx::query(
            "WITH cancelled AS ( \
                 DELETE FROM messages WHERE id = $1 RETURNING dedupe_hash) \
             DELETE FROM message_dedupe \
             WHERE dedupe_hash IN (SELECT dedupe_hash FROM cancelled)",
        )
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(CancelOutcome::Cancelled)
    }

    async fn purge(&self, cutoff: DateTime<Utc>) -> Result<PurgeOutcome, StoreError> {
        // A connection of its own, not the pool's: the session lock lives as long as it does,
        // so a purge that fails or is dropped half-way never hands a pooled connection back
        // still holding the lock; the server releases it when the connection closes.
        let options = self.pool.connect_options();
        let mut connection = PgConnection::connect_with(&options)
            .await
            .map_err(store_error)?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(PURGE_LOCK_KEY)
            .fetch_one(&mut connection)
            .await
            .map_err(store_error)?;
        if !locked {
            let _ = connection.close().await;
            return Ok(PurgeOutcome::Skipped);
        }
        // On an error the connection is dropped, which closes it: the lock goes with it.
        let purged = delete_in_chunks(&mut connection, PURGE_CHUNK_STATEMENT, cutoff).await?;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PURGE_LOCK_KEY)
            .execute(&mut connection)
            .await
            .map_err(store_error)?;
        let _ = connection.close().await;
        Ok(PurgeOutcome::Purged(purged))
    }

    async fn get(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        let row: Option<MessageRow> = sqlx::query_as(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(Message::try_from).transpose()
    }

    async fn list(&self, filter: &MessageFilter) -> Result<Vec<Message>, StoreError> {
        let limit = match filter.limit {
            0 => DEFAULT_LIST_LIMIT,
            n => i64::try_from(n).unwrap_or(i64::MAX),
        };
        let rows: Vec<MessageRow> = sqlx::query_as(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE ($1::text IS NULL OR status = $1::message_status) \
               AND ($2::uuid IS NULL OR recipient = $2) \
               AND ($3::uuid IS NULL OR template_id = $3) \
             ORDER BY created_at DESC, id DESC \
             LIMIT $4"
        ))
        .bind(filter.status.map(MessageStatus::as_str))
        .bind(filter.recipient.map(|u| *u.as_uuid()))
        .bind(filter.template_id.map(|t| *t.as_uuid()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        messages(rows)
    }
}

/// Held leases as the array parameters their statements take.
fn held_columns(held: &[HeldLease]) -> (Vec<Uuid>, Vec<DateTime<Utc>>) {
    held.iter().map(|h| (*h.id.as_uuid(), h.lease)).unzip()
}

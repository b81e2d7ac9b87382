-- Pending messages and failures indexed by method, then age. A lease leaves queued the methods
-- whose messages already wait in the notifier's local backlog (a slow method, such as SMTP,
-- with a backlog's worth taken), and the method was not in these indexes: a lease for webhooks
-- visited, in the table, every older email to read its method and pass it over. With webhooks
-- delivered fast and emails slowly, the oldest pending messages soon are all emails (as the
-- oldest due failures are after a mail server's outage), and each webhook lease walked
-- thousands of them. The lease now selects these kinds per method (`per_method` in
-- adapters/postgres/src/queue.rs), each from its own range of the index, and does not read a
-- method it leaves queued.
DROP INDEX messages_pending_idx;
CREATE INDEX messages_pending_idx ON messages (method, created_at, id)
    WHERE status = 'pending';

-- The retry time stays a key inside the index, as in migration 0005: a failure still waiting
-- costs a step along the index, not a visit to the table.
DROP INDEX messages_retry_idx;
CREATE INDEX messages_retry_idx
    ON messages (method, created_at, id, (COALESCE(next_retry_after, '-infinity'::timestamptz)))
    WHERE status = 'temporary_failure';

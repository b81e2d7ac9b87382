-- Pending messages and failures indexed per method, oldest first. A lease leaves queued the
-- methods whose messages already wait in the notifier's local backlog (a slow method, such as
-- SMTP, with a backlog's worth taken), and the method was not in these indexes: a lease for
-- webhooks visited, in the table, every older email to read its method and pass it over. With
-- webhooks delivered fast and emails slowly, the oldest pending messages soon are all emails (as
-- the oldest due failures are after a mail server's outage), and each webhook lease walked
-- thousands of them. The lease now selects these kinds per method (`per_method` in
-- adapters/postgres/src/queue.rs), each from its method's index, and does not read a method it
-- leaves queued. A message is in at most one of these indexes, so a write costs what it did.
--
-- Each index keeps migration 0005's shape, and a method's messages are written as those of none
-- of the others (`of_method`, which the lease's predicates must match exactly): a lease planned
-- with no statistics at all (a fresh deployment's first burst, before autovacuum analyzed the
-- table) takes `method = 'webhook'` for one row in two hundred, and then reading the method's
-- whole index and sorting it costs the planner what walking it in order does; each lease of a
-- 50,000-message burst read all of them. `method <> 'smtp' AND method <> 'inbox'` counts as
-- nearly every row, so the walk in order stays far cheaper, as it was before the split.
DROP INDEX messages_pending_idx;
CREATE INDEX messages_pending_smtp_idx ON messages (created_at, id)
    WHERE status = 'pending' AND method <> 'webhook' AND method <> 'inbox';
CREATE INDEX messages_pending_webhook_idx ON messages (created_at, id)
    WHERE status = 'pending' AND method <> 'smtp' AND method <> 'inbox';
CREATE INDEX messages_pending_inbox_idx ON messages (created_at, id)
    WHERE status = 'pending' AND method <> 'smtp' AND method <> 'webhook';

-- The retry time stays a key inside each index, as in migration 0005: a failure still waiting
-- costs a step along the index, not a visit to the table.
DROP INDEX messages_retry_idx;
CREATE INDEX messages_retry_smtp_idx
    ON messages (created_at, id, (COALESCE(next_retry_after, '-infinity'::timestamptz)))
    WHERE status = 'temporary_failure' AND method <> 'webhook' AND method <> 'inbox';
CREATE INDEX messages_retry_webhook_idx
    ON messages (created_at, id, (COALESCE(next_retry_after, '-infinity'::timestamptz)))
    WHERE status = 'temporary_failure' AND method <> 'smtp' AND method <> 'inbox';
CREATE INDEX messages_retry_inbox_idx
    ON messages (created_at, id, (COALESCE(next_retry_after, '-infinity'::timestamptz)))
    WHERE status = 'temporary_failure' AND method <> 'smtp' AND method <> 'webhook';

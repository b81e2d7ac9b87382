-- Leases that cost the same whatever waits in the queue. `messages_leasable_idx` held every
-- pending, leased and temporarily failed message in created order, and the lease walked it
-- oldest first, visiting each row in the table to read its status and times. So every lease
-- re-read the rows it could not take: the live leases still being dispatched or waiting for
-- their write-back, and the failures waiting for their retry. Measured with `EXPLAIN ANALYZE` on
-- a lease of 100 out of 10,000 pending messages: 1.7–2.0 ms with nothing ahead, 35 ms with
-- 100,000 older failures waiting for a retry an hour away (a webhook receiver down for a while),
-- +0.4 ms with 1,000 live leases ahead (the notifier's usual write-back buffer).
--
-- Now each leasable kind has an index of its own, and the lease takes up to its count from
-- each and keeps the oldest (DESIGN §5's order, across the three):

-- 1. Pending messages, oldest first. A leased one leaves this index.
CREATE INDEX messages_pending_idx ON messages (created_at, id)
    WHERE status = 'pending';

-- 2. Temporary failures, oldest first, with the retry time as a third key: the lease's
-- "retry time has come" condition is checked inside the index, so a failure still waiting
-- costs a step along the index, not a visit to the table (the 35 ms above: 5.7–6.6 ms).
-- COALESCE: a failure without a retry time is due at once, as `Message::is_leasable` says.
CREATE INDEX messages_retry_idx
    ON messages (created_at, id, (COALESCE(next_retry_after, '-infinity'::timestamptz)))
    WHERE status = 'temporary_failure';

-- 3. Leases by their end. Only expired ones are leasable (a replica crashed, or its
-- write-back failed): a range at the start of this index, usually empty, so live leases are
-- never read. Expired ones are few (what one replica held), sorted oldest first.
CREATE INDEX messages_lease_expiry_idx
    ON messages ((COALESCE(leased_until, '-infinity'::timestamptz)))
    WHERE status = 'leased';

DROP INDEX messages_leasable_idx;

-- 4. The index for inhibiting a deleted recipient's unfinished messages. Its predicate was the
-- old leasable one, which follows from each lease condition above, and with statistics from a
-- quiet moment (every message sent, the partial indexes empty when last vacuumed) the planner
-- saw reading all of it as free as walking the right index, and read every queued row in each
-- lease (auto_explain during the benchmark's drain: 28,100 rows to lease 100). `recipient IS
-- NOT NULL` (always true: the column is NOT NULL) follows only from a condition on the
-- recipient, such as inhibiting's `recipient = $1`, so no lease can be planned on this index.
DROP INDEX messages_recipient_queued_idx;
CREATE INDEX messages_recipient_queued_idx ON messages (recipient)
    WHERE status IN ('pending', 'leased', 'temporary_failure') AND recipient IS NOT NULL;

-- Lighter enqueue. Measured with perf during the benchmark's batch enqueue (100 events per
-- request): the foreign key from `messages.template_id` ran its check, a query of its own
-- (`SELECT 1 FROM templates … FOR KEY SHARE`), for every inserted row, which was about a seventh
-- of PostgreSQL's CPU for that phase, and the text comparisons of the dedupe hashes went through
-- the database's collation.

-- 1. No foreign key from messages to templates. Herald resolves every event's template before it
-- queues a message (an unknown one is refused with a 400), nothing deletes templates (seeding
-- inserts or updates the catalogue's), and only the queue's own statements write `messages`.
-- The cascade it carried had nothing to cascade from.
ALTER TABLE messages DROP CONSTRAINT messages_template_id_fkey;

-- 2. Dedupe hashes are lowercase hex, compared only for equality and order in their index:
-- byte order ("C") gives the same answers as any collation and skips strcoll.
ALTER TABLE message_dedupe ALTER COLUMN dedupe_hash TYPE text COLLATE "C";

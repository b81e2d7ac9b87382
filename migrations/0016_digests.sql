-- Digests (DESIGN §10.3): a template's digest window, and the messages that gather a
-- recipient's events of that template until the window closes.

-- The owner's window in whole seconds; NULL: every event is a message of its own. Seeding the
-- catalogue leaves it as the owner set it.
ALTER TABLE templates ADD COLUMN digest_window_seconds integer
    CONSTRAINT templates_digest_window_check
        CHECK (digest_window_seconds BETWEEN 1 AND 7 * 24 * 3600);

-- A digest is an ordinary message (its window's close is its `next_retry_after`, so the lease
-- finds it when due, on any replica) marked here, whose `data.items` later events append to
-- while it is pending and the window open. A constant default adds the column without
-- rewriting the table.
ALTER TABLE messages ADD COLUMN digest boolean NOT NULL DEFAULT false;

-- Finding the open digest of a template, recipient and method. Partial: only pending digests
-- are in it, so the other messages' writes never touch it.
CREATE INDEX messages_open_digest_idx ON messages (recipient, template_id, method)
    WHERE digest AND status = 'pending';

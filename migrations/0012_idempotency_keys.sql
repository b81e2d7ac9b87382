-- Idempotency keys (DESIGN §10.3): one row per caller and key, claimed in the transaction that
-- queues the request's messages, holding the fingerprint of the request and its answer (the
-- enqueue result as JSON). The primary key is what makes concurrent requests with one key
-- queue once: the second claim waits for the first transaction and then finds the row.
-- `caller` is the nil UUID for a host enqueueing in its own name. Rows claimed more than 24
-- hours ago are replaced by a new claim and deleted by the purge, through the index on
-- `claimed_at`.
CREATE TABLE idempotency_keys (
    caller      uuid        NOT NULL,
    key         text        NOT NULL,
    fingerprint text        NOT NULL,
    answer      jsonb       NOT NULL,
    claimed_at  timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (caller, key)
);

CREATE INDEX idempotency_keys_claimed_at ON idempotency_keys (claimed_at);

-- Rate limits that hold across replicas (custom notifications per user): one row per kind of
-- request and user, holding the current fixed window's start and how many requests it
-- counted. A request in a later window restarts the row at 1, so the table never holds more
-- than one row per user and kind, and needs no purge.
CREATE TABLE rate_counts (
    scope        text        NOT NULL,
    user_id      uuid        NOT NULL,
    window_start timestamptz NOT NULL,
    count        bigint      NOT NULL,
    CONSTRAINT rate_counts_pkey PRIMARY KEY (scope, user_id)
);

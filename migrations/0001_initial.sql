-- Herald's initial schema (DESIGN §2). Applied by `sqlx migrate` (embedded in herald-postgres as
-- `PgStore::migrate`). Constraint and index names are spelled out because herald-postgres matches
-- them when it translates a unique violation into `StoreError::Conflict`: rename one here and the
-- adapter's constants must follow.

-- The delivery methods and message states are Postgres enums: the database itself refuses a
-- value the domain does not know, and each value takes four bytes instead of a string. Adding a
-- value later is `ALTER TYPE … ADD VALUE`, which is cheap.
CREATE TYPE notification_method AS ENUM ('smtp', 'webhook', 'inbox');
CREATE TYPE message_status AS ENUM (
    'pending', 'leased', 'sent', 'temporary_failure', 'permanent_failure', 'inhibited'
);

-- Herald's own user directory (standalone mode; an embedded host may keep its users elsewhere,
-- which is why no other table has a foreign key to this one).
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    username text NOT NULL,
    name text NOT NULL DEFAULT '',
    -- Roles as their names ('owner', 'user-admin', …): a handful per user, always read whole,
    -- and `&&` (overlap) answers "holds any of these roles" directly.
    roles text[] NOT NULL DEFAULT '{}',
    -- Two values that may grow; a CHECK is simpler to extend than an enum used in one column.
    status text NOT NULL DEFAULT 'active'
        CONSTRAINT users_status_check CHECK (status IN ('active', 'suspended')),
    -- Deleted users stay (messages and audit refer to them) but are flagged.
    deleted boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Usernames and emails are unique among live users only, whatever their case: a deleted user
-- gives them up, so a new account may take them (partial indexes over lower()).
CREATE UNIQUE INDEX users_username_live_key ON users (lower(username)) WHERE NOT deleted;
CREATE UNIQUE INDEX users_email_live_key ON users (lower(email)) WHERE NOT deleted;
-- Serves `with_any_role` (roles && $1) over live users.
CREATE INDEX users_roles_live_idx ON users USING gin (roles) WHERE NOT deleted;

-- The event kinds. Seeded from the catalogue at start; `method_override` is the admins' choice and
-- is kept across seeds.
CREATE TABLE templates (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    "group" text NOT NULL, -- quoted: GROUP is a reserved word
    kind text NOT NULL CONSTRAINT templates_kind_check CHECK (kind IN ('system', 'custom')),
    -- Handlebars producing Markdown (DESIGN §3).
    title text NOT NULL,
    body text NOT NULL,
    -- [{ "label": …, "url": … }] as serialized by herald-domain's ActionTemplate.
    actions jsonb NOT NULL DEFAULT '[]',
    enabled_by_default boolean NOT NULL,
    method_override notification_method, -- NULL: the deployment's default method
    -- herald-domain's Audience, tagged by "type": a small sum type, read whole, never queried
    -- by its parts, so JSON rather than three nullable columns.
    audience jsonb NOT NULL,
    inbox_allowed boolean NOT NULL,
    deduplicate boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Names are looked up case-insensitively, so they are unique case-insensitively too.
CREATE UNIQUE INDEX templates_name_key ON templates (lower(name));

-- Users' stored opt-outs. No row: the template's `enabled_by_default` decides.
CREATE TABLE preferences (
    user_id uuid NOT NULL, -- no foreign key: an embedded host's users are not in `users`
    template_id uuid NOT NULL
        CONSTRAINT preferences_template_id_fkey REFERENCES templates (id) ON DELETE CASCADE,
    disabled boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT preferences_pkey PRIMARY KEY (user_id, template_id)
);

-- The queue: one message per (recipient, method) and event (DESIGN §2, §5).
CREATE TABLE messages (
    id uuid PRIMARY KEY,
    template_id uuid NOT NULL
        CONSTRAINT messages_template_id_fkey REFERENCES templates (id) ON DELETE CASCADE,
    recipient uuid NOT NULL, -- no foreign key, as for preferences
    method notification_method NOT NULL,
    status message_status NOT NULL DEFAULT 'pending',
    status_reason text,
    attempt_count integer NOT NULL DEFAULT 0 CONSTRAINT messages_attempt_count_check
        CHECK (attempt_count >= 0),
    -- herald-domain's Payload: sent as-is inside the webhook body, never queried by its parts.
    payload jsonb NOT NULL,
    targets uuid[] NOT NULL DEFAULT '{}',
    created_by text NOT NULL,
    -- Times come from the application's Clock (never now()), so tests can move time.
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    leased_until timestamptz,
    next_retry_after timestamptz,
    queued_seconds double precision NOT NULL DEFAULT 0,
    dedupe_hash text
);

-- A second identical enqueue on the same UTC day is refused here (ON CONFLICT DO NOTHING).
-- NULL hashes (never deduplicated) do not clash: NULLs are distinct in a unique index.
CREATE UNIQUE INDEX messages_dedupe_hash_key ON messages (dedupe_hash);
-- The lease query (DESIGN §5): oldest first among the statuses that can be leasable, with
-- FOR UPDATE SKIP LOCKED. Partial, so final messages (the bulk of the table) are not in it.
CREATE INDEX messages_leasable_idx ON messages (created_at, id)
    WHERE status IN ('pending', 'leased', 'temporary_failure');
-- Inhibiting a deleted recipient's queued messages.
CREATE INDEX messages_recipient_queued_idx ON messages (recipient)
    WHERE status IN ('pending', 'leased', 'temporary_failure');
-- Purge: messages not updated for 7 days.
CREATE INDEX messages_updated_at_idx ON messages (updated_at);

-- The in-app inbox. The id is the id of the message that delivered it, which makes a second
-- delivery of the same message a no-op (INSERT … ON CONFLICT DO NOTHING).
CREATE TABLE inbox_notifications (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    -- No foreign key: a notification outlives any change to the catalogue.
    template_id uuid NOT NULL,
    targets uuid[] NOT NULL DEFAULT '{}',
    title text NOT NULL,
    content text NOT NULL,
    title_markdown text NOT NULL,
    content_markdown text NOT NULL,
    -- Rendered actions (label + absolute URL), always read whole.
    actions jsonb NOT NULL DEFAULT '[]',
    read_at timestamptz,
    created_at timestamptz NOT NULL
);

-- Listings: one user's notifications newest first with a (created_at, id) keyset cursor.
CREATE INDEX inbox_notifications_user_created_idx
    ON inbox_notifications (user_id, created_at DESC, id DESC);
-- Unread counts and "mark all read" touch only unread rows.
CREATE INDEX inbox_notifications_user_unread_idx ON inbox_notifications (user_id)
    WHERE read_at IS NULL;

-- Deployment-wide settings: exactly one row. The boolean primary key with CHECK (singleton)
-- makes a second row impossible, and the row exists from the start, so readers never need an
-- upsert.
CREATE TABLE settings (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT settings_singleton_check CHECK (singleton),
    notifier_paused boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO settings DEFAULT VALUES;

-- API tokens of the standalone server (DESIGN §7). Only a SHA-256 hash of the secret is stored:
-- a leaked table does not leak usable tokens, and a lookup is an exact match on the hash.
CREATE TABLE api_tokens (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    token_hash bytea NOT NULL CONSTRAINT api_tokens_token_hash_key UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at timestamptz, -- NULL: never expires
    revoked_at timestamptz -- NULL: live
);
CREATE UNIQUE INDEX api_tokens_name_key ON api_tokens (lower(name)) WHERE revoked_at IS NULL;

-- When each periodic report (e.g. "Report: Workspace Builds Failed", weekly) was last
-- generated, so that replicas generate it once per period.
CREATE TABLE report_log (
    template_id uuid PRIMARY KEY
        CONSTRAINT report_log_template_id_fkey REFERENCES templates (id) ON DELETE CASCADE,
    last_generated_at timestamptz NOT NULL
);

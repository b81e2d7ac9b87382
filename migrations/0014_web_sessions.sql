-- The web pages' sessions and one-time sign-in links (DESIGN §10.6). Only the SHA-256 hash of
-- a secret is stored, as for API tokens: a leaked table signs nobody in. No foreign key to
-- users: an embedding host's directory has no rows here, and a deleted user stays a row
-- (`deleted`), so deleting a user deletes their sessions explicitly.
CREATE TABLE web_sessions (
    session_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
-- Ending every session of one user (sign-out everywhere, revoked tokens, deletion).
CREATE INDEX web_sessions_user_id_idx ON web_sessions (user_id);

-- A row lives until it is redeemed (deleted by the redeeming statement itself: single use) or
-- purged after it expired.
CREATE TABLE sign_in_links (
    link_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sign_in_links_user_id_idx ON sign_in_links (user_id);

-- API tokens belong to users (DESIGN §7): a request's token answers "which user is calling",
-- and every role rule of the HTTP API is checked against that user. 0001 created the table
-- without an owner because nothing issued tokens yet.

-- A token without an owner could authenticate no one. No release issued any, but should a
-- hand-made row exist, it is dropped rather than making this migration fail.
DELETE FROM api_tokens;

-- No foreign key to `users`, like every other user column: the directory may be an embedding
-- host's. Deleting a user leaves the rows, and authentication refuses tokens of deleted users.
ALTER TABLE api_tokens ADD COLUMN user_id uuid NOT NULL;

-- Names label tokens for their owner, so they are unique per user, not across the deployment.
DROP INDEX api_tokens_name_key;
CREATE UNIQUE INDEX api_tokens_user_name_key ON api_tokens (user_id, lower(name))
    WHERE revoked_at IS NULL;

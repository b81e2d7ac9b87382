-- Preferences per delivery method (DESIGN §10.2): a row is (user, template, method) → disabled,
-- where `method` is 'smtp', 'webhook', 'inbox', or 'all' for every method. For one method the
-- method's row decides, else the 'all' row, else the template's `enabled_by_default`.
--
-- Every row stored before this migration was a per-template preference: it becomes the 'all'
-- row, so it keeps its meaning. The column's default does that without rewriting the table.
-- `method` is text rather than `notification_method` because 'all' is not a method; the check
-- keeps it to the four scopes. The default stays so a row written without a method means what
-- such a row always meant.
ALTER TABLE preferences
    ADD COLUMN method text NOT NULL DEFAULT 'all'
        CONSTRAINT preferences_method_check CHECK (method IN ('all', 'smtp', 'webhook', 'inbox'));

ALTER TABLE preferences
    DROP CONSTRAINT preferences_pkey,
    ADD CONSTRAINT preferences_pkey PRIMARY KEY (user_id, template_id, method);

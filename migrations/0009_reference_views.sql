-- The reference's troubleshooting reads its own tables: "ensure notifications are being added
-- to the `notification_messages` table", "review any available error messages in the
-- `status_reason` column". These views give Herald's tables the reference's names and column
-- names (`messages.template_id` is its `notification_template_id`, `recipient` its `user_id`,
-- a template's `title`/`body` its `title_template`/`body_template`, `method_override` its
-- `method`), so its SQL runs as written. They add nothing to writes: a plain view is its query.
--
-- Read-only: Herald alone writes messages (through its state machine), so a write through a
-- view is refused with a reason instead of silently changing a row behind the notifier. The
-- refusal is an INSTEAD OF trigger rather than a LIMIT or DISTINCT in the view, which would
-- also stop the planner from pushing a query's conditions down to the tables' indexes.

CREATE VIEW notification_messages AS
    SELECT id,
           template_id AS notification_template_id,
           recipient AS user_id,
           method,
           status,
           status_reason,
           created_by,
           payload,
           attempt_count,
           targets,
           created_at,
           updated_at,
           leased_until,
           next_retry_after,
           queued_seconds,
           dedupe_hash,
           lease_expiries
    FROM messages;

CREATE VIEW notification_templates AS
    SELECT id,
           name,
           title AS title_template,
           body AS body_template,
           actions,
           "group",
           method_override AS method,
           kind,
           enabled_by_default
    FROM templates;

CREATE FUNCTION refuse_reference_view_write() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is a read-only view for troubleshooting; Herald alone changes its rows',
        TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER notification_messages_read_only
    INSTEAD OF INSERT OR UPDATE OR DELETE ON notification_messages
    FOR EACH ROW EXECUTE FUNCTION refuse_reference_view_write();

CREATE TRIGGER notification_templates_read_only
    INSTEAD OF INSERT OR UPDATE OR DELETE ON notification_templates
    FOR EACH ROW EXECUTE FUNCTION refuse_reference_view_write();

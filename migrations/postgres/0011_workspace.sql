-- The staff workspace (PostgreSQL). Keep in step with migrations/sqlite/0011_workspace.sql.

-- Who works on an open item (a user name, like audit_log.actor); NULL: nobody yet.
ALTER TABLE review_items ADD COLUMN assignee TEXT;
CREATE INDEX review_state_assignee ON review_items (state, assignee, created_at, id);

-- A user's own language and time zone for the pages (NULL: as the browser asks / the
-- configured time zone). Keyed by the user's name, as assignments and the audit log are.
CREATE TABLE user_settings (
    user_name  TEXT PRIMARY KEY NOT NULL,
    language   TEXT,
    time_zone  TEXT,
    updated_at BIGINT NOT NULL
);

-- The queue's search also finds the sender's display name, the partner's name and the
-- mail's text. The partner name is copied when the mail's partner is set.
CREATE OR REPLACE FUNCTION inbound_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbound_search (id, text)
    VALUES (NEW.id, LOWER(COALESCE(NEW.sender, '') || ' ' || COALESCE(NEW.sender_name, '')
        || ' ' || NEW.subject || ' ' || NEW.loan_numbers || ' '
        || COALESCE((SELECT name FROM partners WHERE partner_id = NEW.partner_id), '') || ' '
        || NEW.body_text))
    ON CONFLICT (id) DO UPDATE SET text = EXCLUDED.text;
    RETURN NULL;
END
$$;
DROP TRIGGER inbound_search_sync ON inbound_messages;
CREATE TRIGGER inbound_search_sync AFTER INSERT OR UPDATE OF sender, sender_name, subject,
    loan_numbers, partner_id, body_text
ON inbound_messages FOR EACH ROW EXECUTE FUNCTION inbound_search_sync();
UPDATE inbound_search s SET text = LOWER(COALESCE(m.sender, '') || ' '
    || COALESCE(m.sender_name, '') || ' ' || m.subject || ' ' || m.loan_numbers || ' '
    || COALESCE(p.name, '') || ' ' || m.body_text)
FROM inbound_messages m LEFT JOIN partners p ON p.partner_id = m.partner_id
WHERE s.id = m.id;

-- The staff workspace (SQLite). Keep in step with migrations/postgres/0011_workspace.sql.

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
DROP TRIGGER inbound_search_insert;
DROP TRIGGER inbound_search_update;
CREATE TRIGGER inbound_search_insert AFTER INSERT ON inbound_messages BEGIN
    INSERT INTO inbound_search (rowid, text)
    VALUES (new.id, COALESCE(new.sender, '') || ' ' || COALESCE(new.sender_name, '') || ' '
        || new.subject || ' ' || new.loan_numbers || ' '
        || COALESCE((SELECT name FROM partners WHERE partner_id = new.partner_id), '') || ' '
        || new.body_text);
END;
CREATE TRIGGER inbound_search_update AFTER UPDATE OF sender, sender_name, subject, loan_numbers,
    partner_id, body_text ON inbound_messages BEGIN
    UPDATE inbound_search
    SET text = COALESCE(new.sender, '') || ' ' || COALESCE(new.sender_name, '') || ' '
        || new.subject || ' ' || new.loan_numbers || ' '
        || COALESCE((SELECT name FROM partners WHERE partner_id = new.partner_id), '') || ' '
        || new.body_text
    WHERE rowid = new.id;
END;
DELETE FROM inbound_search;
INSERT INTO inbound_search (rowid, text)
SELECT m.id, COALESCE(m.sender, '') || ' ' || COALESCE(m.sender_name, '') || ' ' || m.subject
    || ' ' || m.loan_numbers || ' ' || COALESCE(p.name, '') || ' ' || m.body_text
FROM inbound_messages m LEFT JOIN partners p ON p.partner_id = m.partner_id;

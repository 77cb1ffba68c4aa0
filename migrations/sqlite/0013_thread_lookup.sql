-- Finding a mail's thread (SQLite). Keep in step with migrations/postgres/0013_thread_lookup.sql.

-- The item page lists the mails around one: those it names in References/In-Reply-To, those
-- that answered one of our replies named there, and the same partner's mails about the same
-- loans. Without these, each of the three was a scan of every mail ever received.
CREATE INDEX inbound_message_id ON inbound_messages (message_id);
CREATE INDEX outbox_message_id ON outbox (message_id);

-- The loan numbers of each mail, one row each, kept by triggers from the JSON list in
-- inbound_messages.loan_numbers (which the pipeline writes; a LIKE over it cannot use an index).
CREATE TABLE inbound_loans (
    inbound_id  BIGINT NOT NULL REFERENCES inbound_messages (id) ON DELETE CASCADE,
    loan_number TEXT NOT NULL,
    PRIMARY KEY (loan_number, inbound_id)
) WITHOUT ROWID;
CREATE INDEX inbound_loans_mail ON inbound_loans (inbound_id);

CREATE TRIGGER inbound_loans_insert AFTER INSERT ON inbound_messages
WHEN json_valid(NEW.loan_numbers)
BEGIN
    INSERT OR IGNORE INTO inbound_loans (inbound_id, loan_number)
    SELECT NEW.id, value FROM json_each(NEW.loan_numbers) WHERE type = 'text';
END;
CREATE TRIGGER inbound_loans_update AFTER UPDATE OF loan_numbers ON inbound_messages
BEGIN
    DELETE FROM inbound_loans WHERE inbound_id = NEW.id;
    INSERT OR IGNORE INTO inbound_loans (inbound_id, loan_number)
    SELECT NEW.id, value FROM json_each(CASE WHEN json_valid(NEW.loan_numbers)
        THEN NEW.loan_numbers ELSE '[]' END) WHERE type = 'text';
END;

INSERT OR IGNORE INTO inbound_loans (inbound_id, loan_number)
SELECT m.id, j.value FROM inbound_messages m, json_each(m.loan_numbers) j
WHERE json_valid(m.loan_numbers) AND j.type = 'text';

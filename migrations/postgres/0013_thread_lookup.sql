-- Finding a mail's thread (PostgreSQL). Keep in step with migrations/sqlite/0013_thread_lookup.sql.

-- The item page lists the mails around one: those it names in References/In-Reply-To, those
-- that answered one of our replies named there, and the same partner's mails about the same
-- loans. Without these, each of the three was a scan of every mail ever received.
CREATE INDEX inbound_message_id ON inbound_messages (message_id);
CREATE INDEX outbox_message_id ON outbox (message_id);

-- The loan numbers of each mail, one row each, kept by a trigger from the JSON list in
-- inbound_messages.loan_numbers (which the pipeline writes; a LIKE over it cannot use an index).
-- The numbers are read with a pattern rather than a cast to jsonb, so that a list that is not
-- JSON can never make an insert fail.
CREATE TABLE inbound_loans (
    inbound_id  BIGINT NOT NULL REFERENCES inbound_messages (id) ON DELETE CASCADE,
    loan_number TEXT NOT NULL,
    PRIMARY KEY (loan_number, inbound_id)
);
CREATE INDEX inbound_loans_mail ON inbound_loans (inbound_id);

CREATE FUNCTION inbound_loans_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM inbound_loans WHERE inbound_id = NEW.id;
    END IF;
    INSERT INTO inbound_loans (inbound_id, loan_number)
    SELECT DISTINCT NEW.id, m[1] FROM regexp_matches(NEW.loan_numbers, '"([^"\\]*)"', 'g') AS m
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER inbound_loans_sync AFTER INSERT OR UPDATE OF loan_numbers
ON inbound_messages FOR EACH ROW EXECUTE FUNCTION inbound_loans_sync();

INSERT INTO inbound_loans (inbound_id, loan_number)
SELECT DISTINCT i.id, m[1] FROM inbound_messages i,
    LATERAL regexp_matches(i.loan_numbers, '"([^"\\]*)"', 'g') AS m
ON CONFLICT DO NOTHING;

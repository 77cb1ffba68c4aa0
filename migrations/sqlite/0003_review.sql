-- The review pages (SQLite). Keep in step with migrations/postgres/0003_review.sql.

-- Helpdesk staff who may sign in to the review pages. password_hash is an argon2id PHC
-- string; a disabled account keeps its name in the audit log but cannot sign in.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Signed-in browsers. The cookie carries a random token; only its SHA-256 is stored, so a
-- copy of the database does not hand out sessions. csrf_token is echoed in every form.
CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY NOT NULL,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Sign-in attempts, for rate limiting by account name and by client address.
CREATE TABLE login_attempts (
    id       INTEGER PRIMARY KEY,
    at       BIGINT NOT NULL,
    username TEXT NOT NULL,
    remote   TEXT NOT NULL,
    success  BOOLEAN NOT NULL
);
CREATE INDEX login_attempts_user ON login_attempts (username, at);
CREATE INDEX login_attempts_remote ON login_attempts (remote, at);

-- Who did what, when: every staff action, written in the transaction of its effect.
-- actor is a name, not a users reference: CLI actions are audited too (`--as` or $USER).
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    via        TEXT NOT NULL,
    action     TEXT NOT NULL,
    review_id  BIGINT REFERENCES review_items (id),
    inbound_id BIGINT REFERENCES inbound_messages (id),
    outbox_id  BIGINT REFERENCES outbox (id),
    detail     TEXT NOT NULL
);
CREATE INDEX audit_review ON audit_log (review_id);
CREATE INDEX audit_inbound ON audit_log (inbound_id);
CREATE INDEX audit_actor ON audit_log (actor, id);
CREATE INDEX audit_action ON audit_log (action, id);

-- Keyset paging of the queue: (created_at, id) is the page cursor, so the id belongs in the
-- index (SQLite has it implicitly as the rowid; PostgreSQL needs it spelled out).
DROP INDEX review_state_created;
DROP INDEX review_state_reason;
CREATE INDEX review_state_created ON review_items (state, created_at, id);
CREATE INDEX review_state_reason ON review_items (state, reason, created_at, id);

-- The loan numbers a staff answer reported on (JSON list), so the history finds it by
-- number; automatic replies report on their request's numbers and leave it NULL.
ALTER TABLE outbox ADD COLUMN loan_numbers TEXT;

-- History (answered requests, staff replies, reminders), newest first, by purpose.
CREATE INDEX outbox_purpose_created ON outbox (purpose, created_at, id);
CREATE INDEX outbox_created ON outbox (created_at, id);

-- Substring search (sender, subject, loan numbers) without scanning the mail tables: FTS5
-- trigram indexes (case-insensitive, any script), kept in step by triggers. The rowid is
-- the mail's id. Queries of three or more characters use the index; shorter ones scan these
-- narrow tables.
CREATE VIRTUAL TABLE inbound_search USING fts5(text, tokenize = 'trigram');
CREATE TRIGGER inbound_search_insert AFTER INSERT ON inbound_messages BEGIN
    INSERT INTO inbound_search (rowid, text)
    VALUES (new.id, COALESCE(new.sender, '') || ' ' || new.subject || ' ' || new.loan_numbers);
END;
CREATE TRIGGER inbound_search_update AFTER UPDATE OF sender, subject, loan_numbers
ON inbound_messages BEGIN
    UPDATE inbound_search
    SET text = COALESCE(new.sender, '') || ' ' || new.subject || ' ' || new.loan_numbers
    WHERE rowid = new.id;
END;
CREATE TRIGGER inbound_search_delete AFTER DELETE ON inbound_messages BEGIN
    DELETE FROM inbound_search WHERE rowid = old.id;
END;
INSERT INTO inbound_search (rowid, text)
SELECT id, COALESCE(sender, '') || ' ' || subject || ' ' || loan_numbers FROM inbound_messages;

CREATE VIRTUAL TABLE outbox_search USING fts5(text, tokenize = 'trigram');
CREATE TRIGGER outbox_search_insert AFTER INSERT ON outbox BEGIN
    INSERT INTO outbox_search (rowid, text)
    VALUES (new.id, new.recipients || ' ' || new.subject || ' ' || COALESCE(new.loan_numbers, ''));
END;
CREATE TRIGGER outbox_search_update AFTER UPDATE OF recipients, subject, loan_numbers
ON outbox BEGIN
    UPDATE outbox_search
    SET text = new.recipients || ' ' || new.subject || ' ' || COALESCE(new.loan_numbers, '')
    WHERE rowid = new.id;
END;
CREATE TRIGGER outbox_search_delete AFTER DELETE ON outbox BEGIN
    DELETE FROM outbox_search WHERE rowid = old.id;
END;
INSERT INTO outbox_search (rowid, text)
SELECT id, recipients || ' ' || subject || ' ' || COALESCE(loan_numbers, '') FROM outbox;

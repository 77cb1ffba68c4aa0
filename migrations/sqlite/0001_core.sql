-- Core schema (SQLite). Keep in step with migrations/postgres/0001_core.sql: same tables,
-- columns and meanings; only the type spellings differ.
-- Times are Unix milliseconds (BIGINT), calendar dates are 'YYYY-MM-DD' text, lists are JSON
-- arrays in text: all three compare and sort the same way on both backends.

CREATE TABLE partners (
    partner_id   TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    admin_emails TEXT NOT NULL,
    language     TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- A domain belongs to one partner: it decides who may ask about which loans.
CREATE TABLE partner_domains (
    domain     TEXT PRIMARY KEY NOT NULL,
    partner_id TEXT NOT NULL REFERENCES partners (partner_id) ON DELETE CASCADE
);
CREATE INDEX partner_domains_partner ON partner_domains (partner_id);

CREATE TABLE shipments (
    loan_number     TEXT PRIMARY KEY NOT NULL,
    partner_id      TEXT NOT NULL REFERENCES partners (partner_id),
    customer        TEXT NOT NULL,
    status          TEXT NOT NULL,
    carrier         TEXT,
    tracking_number TEXT,
    shipped_on      TEXT,
    eta             TEXT,
    delivered_on    TEXT,
    items           TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX shipments_partner ON shipments (partner_id);

CREATE TABLE trials (
    trial_id              TEXT PRIMARY KEY NOT NULL,
    partner_id            TEXT NOT NULL REFERENCES partners (partner_id),
    customer              TEXT NOT NULL,
    customer_admin_emails TEXT NOT NULL,
    services              TEXT NOT NULL,
    starts_on             TEXT NOT NULL,
    expires_on            TEXT NOT NULL,
    extended              BOOLEAN NOT NULL,
    converted             BOOLEAN NOT NULL,
    timezone              TEXT NOT NULL,
    language              TEXT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX trials_partner ON trials (partner_id);
CREATE INDEX trials_active_expiry ON trials (expires_on) WHERE NOT converted;

-- Every mail trialdesk has taken in, keyed for idempotency by Message-ID (or a hash of the raw
-- bytes). kind/action/partner_id/loan_numbers repeat the latest decision for fast listing.
CREATE TABLE inbound_messages (
    id           INTEGER PRIMARY KEY,
    message_key  TEXT NOT NULL UNIQUE,
    message_id   TEXT,
    source       TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    sender       TEXT,
    sender_name  TEXT,
    subject      TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    raw          BLOB,
    body_text    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    action       TEXT NOT NULL,
    partner_id   TEXT,
    loan_numbers TEXT NOT NULL
);
CREATE INDEX inbound_received ON inbound_messages (received_at);
CREATE INDEX inbound_sender ON inbound_messages (sender);

-- Every decision ever taken on a message (re-running the pipeline adds one).
CREATE TABLE decisions (
    id           INTEGER PRIMARY KEY,
    inbound_id   BIGINT NOT NULL REFERENCES inbound_messages (id),
    decided_at   BIGINT NOT NULL,
    decided_by   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    action       TEXT NOT NULL,
    language     TEXT NOT NULL,
    partner_id   TEXT,
    loan_numbers TEXT NOT NULL,
    reasons      TEXT NOT NULL,
    review       TEXT NOT NULL
);
CREATE INDEX decisions_inbound ON decisions (inbound_id);

-- Transactional outbox: rows are inserted in the transaction that decides to send, and a
-- sender claims them with a lease. body is the complete RFC 5322 message, so a retry sends
-- the very same bytes (same Message-ID).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    purpose         TEXT NOT NULL,
    inbound_id      BIGINT REFERENCES inbound_messages (id),
    message_id      TEXT NOT NULL UNIQUE,
    envelope_from   TEXT NOT NULL,
    recipients      TEXT NOT NULL,
    rate_key        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            BLOB NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    locked_by       TEXT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'queued';
CREATE INDEX outbox_rate ON outbox (rate_key, created_at);
CREATE INDEX outbox_inbound ON outbox (inbound_id);

-- What waits for a person. Exactly one of inbound_id / outbox_id / reminder_id is set.
CREATE TABLE review_items (
    id          INTEGER PRIMARY KEY,
    reason      TEXT NOT NULL,
    reasons     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    inbound_id  BIGINT REFERENCES inbound_messages (id),
    outbox_id   BIGINT REFERENCES outbox (id),
    reminder_id BIGINT,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    resolved_at BIGINT,
    resolved_by TEXT,
    note        TEXT
);
CREATE INDEX review_state_created ON review_items (state, created_at);
CREATE INDEX review_state_reason ON review_items (state, reason, created_at);
CREATE INDEX review_inbound ON review_items (inbound_id);
CREATE INDEX review_outbox ON review_items (outbox_id);

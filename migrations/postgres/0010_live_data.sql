-- Live data out (PostgreSQL): proactive shipment notices and staff attention per loan.
-- Keep in step with migrations/sqlite/0010_live_data.sql.

-- Partners opt in to proactive shipment notices (partners CSV column notify_shipment_updates).
ALTER TABLE partners ADD COLUMN notify_shipment_updates BOOLEAN NOT NULL DEFAULT FALSE;

-- One row per (loan, status) a partner was told about: the unique key makes a notice go out
-- exactly once however often the same data is imported. Inserted in the transaction that
-- changes the shipment and queues the notice (outbox_id).
CREATE TABLE shipment_notices (
    loan_number TEXT NOT NULL,
    status      TEXT NOT NULL,
    partner_id  TEXT NOT NULL,
    outbox_id   BIGINT REFERENCES outbox (id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (loan_number, status)
);
CREATE INDEX shipment_notices_outbox ON shipment_notices (outbox_id);

-- Review items opened for a thing rather than for one mail (`shipment_attention` per loan):
-- at most one OPEN item per key; once resolved, a new one may be opened.
ALTER TABLE review_items ADD COLUMN attention_key TEXT;
CREATE UNIQUE INDEX review_attention_open ON review_items (attention_key)
    WHERE state = 'open' AND attention_key IS NOT NULL;

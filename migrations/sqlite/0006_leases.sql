-- Leases (SQLite). Keep in step with migrations/postgres/0006_leases.sql (same text).
--
-- Which instance may use a resource only one should use at a time (the IMAP session of a
-- mailbox). A row is taken or renewed with one conditional upsert (free, expired, or already
-- ours) and given up by deleting it. Times are Unix ms on the DATABASE's clock, so instances
-- on hosts whose clocks disagree still agree on when a lease ends. token is random per
-- process: it, not the human-readable holder, decides who owns the row. process names the
-- holder's process on its machine (kernel boot id, PID namespace, PID, start time), so an
-- instance on the same machine can tell a dead holder from a slow one and take over at once.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    token       TEXT NOT NULL,
    process     TEXT,
    acquired_at BIGINT NOT NULL,
    renewed_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

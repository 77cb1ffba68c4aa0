-- Trial-lifecycle reminders (SQLite). Keep in step with migrations/postgres/0002_reminders.sql.

-- When the trial's current expires_on became known to us (first import, or the import or
-- `trials extend` that changed it). A reminder whose catch-up window ended before that is not
-- a miss of ours: nobody could have sent it.
ALTER TABLE trials ADD COLUMN planned_since BIGINT NOT NULL DEFAULT 0;
UPDATE trials SET planned_since = updated_at;

-- One row per (trial, kind, audience, expiry date), inserted in the transaction that queues
-- the mail (state 'queued', outbox_id set), records it as missed after its 7-day window
-- ('missed', with a review item), or gives up on it because it could not be rendered
-- ('failed', with a review item). The unique key is what makes every reminder go out once,
-- whatever the number of ticks, restarts and instances.
CREATE TABLE reminders (
    id         INTEGER PRIMARY KEY,
    trial_id   TEXT NOT NULL REFERENCES trials (trial_id),
    kind       TEXT NOT NULL,
    audience   TEXT NOT NULL,
    expires_on TEXT NOT NULL,
    due_on     TEXT NOT NULL,
    state      TEXT NOT NULL,
    recipients TEXT NOT NULL,
    language   TEXT NOT NULL,
    outbox_id  BIGINT REFERENCES outbox (id),
    created_at BIGINT NOT NULL,
    UNIQUE (trial_id, kind, audience, expires_on)
);
CREATE INDEX reminders_due ON reminders (due_on);
CREATE INDEX reminders_state_created ON reminders (state, created_at);
CREATE INDEX reminders_outbox ON reminders (outbox_id);
CREATE INDEX review_reminder ON review_items (reminder_id);

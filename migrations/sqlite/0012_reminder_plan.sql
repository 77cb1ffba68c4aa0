-- Reminder planning (SQLite). Keep in step with migrations/postgres/0012_reminder_plan.sql.

-- The planning query reads every non-converted trial in a few expiry ranges. Through
-- trials_active_expiry each match costs a random lookup into the trials table (rows are stored in
-- import order, not by expiry); this index carries every column the query reads, so a range is
-- one sequential read of the index. `converted` is listed too: SQLite does not count the
-- partial index's predicate as covered, and would otherwise still read the table.
CREATE INDEX trials_active_plan ON trials (expires_on, trial_id, partner_id, timezone,
    planned_since, language, services, customer_admin_emails, converted) WHERE NOT converted;

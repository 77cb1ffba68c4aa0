-- Reminder planning (PostgreSQL). Keep in step with migrations/sqlite/0012_reminder_plan.sql.

-- The planning query reads every non-converted trial in a few expiry ranges; with the
-- columns it reads included, the range can be an index-only scan instead of one heap fetch
-- per trial.
CREATE INDEX trials_active_plan ON trials (expires_on) INCLUDE (trial_id, partner_id,
    timezone, planned_since, language, services, customer_admin_emails) WHERE NOT converted;

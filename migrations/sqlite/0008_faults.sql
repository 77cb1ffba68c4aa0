-- Faults of the world (docs/reliability.md). Keep in step with the other backend's 0008.

-- At most one open `relay_down` review item: the sender opens it when the SMTP relay becomes
-- unavailable and resolves it when a send works again; several instances share it.
CREATE UNIQUE INDEX review_one_open_relay_down ON review_items (reason)
    WHERE reason = 'relay_down' AND state = 'open';

-- Reminders re-checked at send time: a reminder whose trial was converted or extended before
-- it went out is cancelled (state 'cancelled'), and this says why.
ALTER TABLE reminders ADD COLUMN cancelled_reason TEXT;

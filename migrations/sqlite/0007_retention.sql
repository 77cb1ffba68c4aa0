-- Raw mail still kept, by age: the retention job finds what to clear without scanning the
-- rows it already cleared. Keep in step with migrations/postgres/0007_retention.sql.
CREATE INDEX inbound_raw_kept ON inbound_messages (received_at) WHERE raw IS NOT NULL;

-- The audit trail is paged by position in the stream: (stream sequence, aggregate
-- version) orders every event, including the several events one message holds.
CREATE INDEX audit_events_position ON audit_events (stream_sequence, aggregate_version);

-- The audit projection now stores payloads with secrets redacted (see
-- projections/src/redaction.rs, SECRET_FIELDS); redact the rows stored before it.
-- The event stream keeps the originals, which the aggregates need.
UPDATE audit_events
SET payload = jsonb_set(payload, '{passwordHash}', '"[redacted]"')
WHERE jsonb_typeof(payload -> 'passwordHash') = 'string' AND payload ->> 'passwordHash' <> '[redacted]';

UPDATE audit_events
SET payload = jsonb_set(payload, '{refreshHash}', '"[redacted]"')
WHERE jsonb_typeof(payload -> 'refreshHash') = 'string' AND payload ->> 'refreshHash' <> '[redacted]';

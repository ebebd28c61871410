-- Webhooks (SPEC §7): the endpoints, folded from their `webhook` events by the
-- webhooks projection, and one delivery row per (endpoint, matching event).

-- The endpoints, as their events leave them. The projection's own table: a
-- rebuild makes it again from the stream. `secret` signs deliveries (it is in the
-- events too; every copy for people to read redacts it).
CREATE TABLE webhook_endpoints (
    id                         UUID PRIMARY KEY,
    url                        TEXT NOT NULL,
    -- Patterns: an event type, `<aggregate type>.*` or `*`.
    event_types                TEXT[] NOT NULL,
    description                TEXT NOT NULL,
    enabled                    BOOLEAN NOT NULL,
    secret                     TEXT NOT NULL,
    -- The secret a rotation replaced, which still signs until it expires.
    previous_secret            TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    created_by                 UUID,
    created_at                 TIMESTAMPTZ NOT NULL,
    updated_at                 TIMESTAMPTZ NOT NULL,
    -- The stream sequence of `WebhookRegistered`: only later events go to it.
    registered_sequence        BIGINT NOT NULL,
    deleted_at                 TIMESTAMPTZ
);

-- What is sent, and how it went: one row per (endpoint, event), its id a UUIDv5
-- of both, inserted ON CONFLICT DO NOTHING in the projection's batch transaction.
-- Not part of the projection's rebuild (a rebuild's shadow schema inserts
-- nothing here): history is never sent again and delivery state is never lost.
-- The delivery workers update these rows.
CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY,
    endpoint_id      UUID NOT NULL,
    event_id         UUID NOT NULL,
    event_type       TEXT NOT NULL,
    -- Per endpoint, deliveries go out in (stream_sequence, event_index) order.
    stream_sequence  BIGINT NOT NULL,
    event_index      INTEGER NOT NULL,
    -- The exact body sent, the same bytes on every attempt.
    body             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The give-up clock runs from the first attempt, so a delivery that waited
    -- behind an earlier one still gets its whole retry schedule.
    first_attempt_at TIMESTAMPTZ,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_attempt_at  TIMESTAMPTZ,
    last_status_code INTEGER,
    last_error       TEXT,
    delivered_at     TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, stream_sequence, event_index)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, stream_sequence DESC, event_index DESC);
-- Delivered rows are deleted after 30 days (the delivery worker's housekeeping).
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (delivered_at) WHERE status = 'delivered';

-- At most one delivery in flight per endpoint across every rapat process: a
-- worker holds the endpoint's lease while it sends; a crashed one's expires.
CREATE TABLE webhook_leases (
    endpoint_id  UUID PRIMARY KEY,
    holder       UUID NOT NULL,
    leased_until TIMESTAMPTZ NOT NULL
);

-- The email and push outbox (SPEC §7): one row per message a channel must send,
-- written by a projection in the same transaction as what it derives from (a
-- notification, an account's verification or reset request), so it is there
-- exactly when its cause is. The channel workers lease due rows, send, and record
-- the outcome; nothing here is derived from events after the insert, so a rebuild
-- neither adds rows for history (it skips the insert) nor loses delivery state.
CREATE TABLE deliveries (
    -- UUIDv5 of (source id, channel): the source is a notification, or the event
    -- for a message that is not one. Receivers see it (Message-ID, push topic).
    id              UUID PRIMARY KEY,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'push')),
    -- A notification kind (SPEC §6) or a message of its own (email_verification, password_reset, ...).
    kind            TEXT NOT NULL,
    -- To an account, or to an address without one (an invitation by email).
    recipient_id    UUID,
    address         TEXT,
    notification_id UUID,
    payload         JSONB NOT NULL,
    event_id        UUID NOT NULL,
    stream_sequence BIGINT NOT NULL,
    -- The causing event's time.
    created_at      TIMESTAMPTZ NOT NULL,
    -- When it was first due: the retry schedule counts from here.
    enqueued_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    -- Attempts started, the one in flight included.
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A worker is sending it until then; a crashed worker's lease runs out.
    leased_until    TIMESTAMPTZ,
    last_error      TEXT,
    delivered_at    TIMESTAMPTZ,
    CHECK (recipient_id IS NOT NULL OR address IS NOT NULL)
);
CREATE INDEX deliveries_due ON deliveries (channel, next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_failed ON deliveries (channel, enqueued_at) WHERE state = 'failed';
CREATE INDEX deliveries_delivered ON deliveries (delivered_at) WHERE state = 'delivered';

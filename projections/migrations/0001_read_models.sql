-- rapat read models. Every table here is derived from the JetStream event stream and
-- can be rebuilt from it (see `rebuild.rs`); only `projection_checkpoints` and
-- `parked_events` describe the projector itself.

-- Where each projection is in the stream. The position lives in Postgres, written in
-- the same transaction as the read-model change, so redelivery never applies twice.
CREATE TABLE projection_checkpoints (
    projection     TEXT PRIMARY KEY,
    last_sequence  BIGINT NOT NULL DEFAULT 0,
    -- Bumped by a reset: a running projector that sees another epoch restarts.
    epoch          BIGINT NOT NULL DEFAULT 0,
    -- Events applied since the last reset (what a rebuild reports).
    applied_events BIGINT NOT NULL DEFAULT 0,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Messages a projection could not apply (undecodable, or refused by the database).
-- The checkpoint moves past them; they stay here for a person to look at.
CREATE TABLE parked_events (
    id              BIGSERIAL PRIMARY KEY,
    projection      TEXT NOT NULL,
    stream_sequence BIGINT NOT NULL,
    subject         TEXT NOT NULL,
    error           TEXT NOT NULL,
    payload         BYTEA NOT NULL,
    parked_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX parked_events_projection ON parked_events (projection, stream_sequence);

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    first_name    TEXT NOT NULL,
    last_name     TEXT NOT NULL,
    avatar        TEXT,
    status        TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE sessions (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL,
    refresh_hash   TEXT NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    refreshed_at   TIMESTAMPTZ,
    expires_at     TIMESTAMPTZ NOT NULL,
    generation     BIGINT NOT NULL DEFAULT 0,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE contacts (
    owner_id   UUID NOT NULL,
    contact_id UUID NOT NULL,
    added_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner_id, contact_id)
);

CREATE TABLE rooms (
    id                UUID PRIMARY KEY,
    host_id           UUID NOT NULL,
    name              TEXT NOT NULL,
    description       TEXT NOT NULL,
    has_password      BOOLEAN NOT NULL,
    max_users         INTEGER NOT NULL,
    scheduled_at      TIMESTAMPTZ,
    status            TEXT NOT NULL CHECK (status IN ('active', 'ended')),
    participant_count INTEGER NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    ended_at          TIMESTAMPTZ
);
CREATE INDEX rooms_host ON rooms (host_id, status);
CREATE INDEX rooms_ended ON rooms (ended_at DESC) WHERE status = 'ended';

-- One row per stay: a user who leaves and joins again has two rows.
CREATE TABLE participants (
    id             BIGSERIAL PRIMARY KEY,
    room_id        UUID NOT NULL,
    user_id        UUID NOT NULL,
    joined_at      TIMESTAMPTZ NOT NULL,
    left_at        TIMESTAMPTZ,
    left_reason    TEXT CHECK (left_reason IN ('left', 'removed', 'room_ended')),
    audio_muted    BOOLEAN NOT NULL DEFAULT FALSE,
    video_on       BOOLEAN NOT NULL DEFAULT FALSE,
    screen_sharing BOOLEAN NOT NULL DEFAULT FALSE,
    muted_by_host  BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX participants_open_stay ON participants (room_id, user_id) WHERE left_at IS NULL;
CREATE INDEX participants_user ON participants (user_id, room_id);

CREATE TABLE audit_events (
    event_id          UUID PRIMARY KEY,
    stream_sequence   BIGINT NOT NULL,
    aggregate_type    TEXT NOT NULL,
    aggregate_id      TEXT NOT NULL,
    aggregate_version BIGINT NOT NULL,
    event_type        TEXT NOT NULL,
    schema_version    INTEGER NOT NULL,
    actor             TEXT,
    correlation_id    TEXT,
    command_id        TEXT NOT NULL,
    occurred_at       TIMESTAMPTZ NOT NULL,
    payload           JSONB NOT NULL
);
CREATE INDEX audit_events_aggregate ON audit_events (aggregate_type, aggregate_id, aggregate_version);
CREATE INDEX audit_events_actor ON audit_events (actor);
CREATE INDEX audit_events_type ON audit_events (event_type);
CREATE INDEX audit_events_occurred ON audit_events (occurred_at);
CREATE INDEX audit_events_sequence ON audit_events (stream_sequence);

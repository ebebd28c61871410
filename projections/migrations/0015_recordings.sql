-- Recording (SPEC §10), from room events (the `rooms` projection).

-- On while the host records the room: what REST shows and a socket that joins
-- is told.
ALTER TABLE rooms ADD COLUMN recording BOOLEAN NOT NULL DEFAULT FALSE;

-- One row per finished track file (`TrackRecordingFinished`). An expired one
-- (`TrackRecordingExpired`: its file was deleted) keeps its row, marked, so the
-- history of what was recorded stays; lists leave it out.
CREATE TABLE track_recordings (
    id          UUID PRIMARY KEY,
    room_id     UUID NOT NULL,
    -- The publisher.
    user_id     UUID NOT NULL,
    codec       TEXT NOT NULL CHECK (codec IN ('opus', 'vp8')),
    started_at  TIMESTAMPTZ NOT NULL,
    duration_ms BIGINT NOT NULL CHECK (duration_ms >= 0),
    bytes       BIGINT NOT NULL CHECK (bytes >= 0),
    -- When the finished file was recorded on the room.
    finished_at TIMESTAMPTZ NOT NULL,
    expired_at  TIMESTAMPTZ
);
CREATE INDEX track_recordings_room ON track_recordings (room_id, started_at) WHERE expired_at IS NULL;
-- What the retention loop looks for: the oldest files still kept.
CREATE INDEX track_recordings_kept ON track_recordings (started_at) WHERE expired_at IS NULL;

-- Analytics of rooms, from room events only (see `models/analytics.rs` for the exact
-- meaning of a meeting and a stay). Per room and UTC day, plus the running state
-- that keeps the projection incremental: the open stays and the open meetings.

-- One row per room and UTC day on which something counted happened.
CREATE TABLE analytics_room_days (
    room_id            UUID NOT NULL,
    day                DATE NOT NULL,
    -- Meetings that started this day.
    meetings           INTEGER NOT NULL DEFAULT 0,
    -- Of those, the ones that have ended, and their summed length: the average
    -- meeting length is meeting_micros / meetings_ended.
    meetings_ended     INTEGER NOT NULL DEFAULT 0,
    meeting_micros     BIGINT NOT NULL DEFAULT 0,
    -- Closed stays' time inside this day (a stay crossing midnight is split).
    participant_micros BIGINT NOT NULL DEFAULT 0,
    -- Most stays open at one instant of this day.
    peak_concurrency   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, day)
);
CREATE INDEX analytics_room_days_day ON analytics_room_days (day);

-- Who was in the room at some instant of the day: what "unique participants" counts.
CREATE TABLE analytics_room_participants (
    room_id UUID NOT NULL,
    day     DATE NOT NULL,
    user_id UUID NOT NULL,
    PRIMARY KEY (room_id, day, user_id)
);

CREATE INDEX analytics_room_participants_day ON analytics_room_participants (day, user_id);

-- Stays not closed yet.
CREATE TABLE analytics_open_stays (
    room_id   UUID NOT NULL,
    user_id   UUID NOT NULL,
    joined_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- Rooms with a meeting under way (at least one open stay); the row goes when the
-- meeting ends.
CREATE TABLE analytics_open_meetings (
    room_id     UUID PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    concurrency INTEGER NOT NULL,
    -- The UTC day of the room's latest applied join, leave, removal or end: days
    -- after it that the open stays run through are filled in by the next one.
    last_day    DATE NOT NULL
);

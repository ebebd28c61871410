-- SPEC §6: a room's planned length, its schedule's sequence (0 at creation, one
-- more per reschedule: a calendar's SEQUENCE), when its meeting began (the first
-- join; after that the schedule is history) and when it was cancelled (ended
-- without ever starting).
ALTER TABLE rooms
    ADD COLUMN duration_minutes  INTEGER CHECK (duration_minutes BETWEEN 1 AND 1440),
    ADD COLUMN schedule_sequence BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN started_at        TIMESTAMPTZ,
    ADD COLUMN cancelled_at      TIMESTAMPTZ;

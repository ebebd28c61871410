-- In-app notifications (SPEC §6) and the little state the notifications
-- projection folds to decide who gets them. Every table here is that
-- projection's own (it reads no other read model), so a rebuild from the stream
-- gives the same rows.

-- One row per (causing event, recipient): `id` is a UUIDv5 of both, inserted ON
-- CONFLICT DO NOTHING. The row is stored whatever the recipient's channels say;
-- the channels are recorded for the delivery workers, and REST lists the in-app ones.
CREATE TABLE notifications (
    id              UUID PRIMARY KEY,
    recipient_id    UUID NOT NULL,
    kind            TEXT NOT NULL,
    -- The causing event's timestamp, never the time it was projected.
    created_at      TIMESTAMPTZ NOT NULL,
    -- Set by the recipient's `inbox` events (also event-sourced).
    read_at         TIMESTAMPTZ,
    payload         JSONB NOT NULL,
    event_id        UUID NOT NULL,
    stream_sequence BIGINT NOT NULL,
    in_app          BOOLEAN NOT NULL,
    email           BOOLEAN NOT NULL,
    push            BOOLEAN NOT NULL
);
CREATE INDEX notifications_recipient_newest ON notifications (recipient_id, created_at DESC, id DESC) WHERE in_app;
CREATE INDEX notifications_recipient_unread ON notifications (recipient_id) WHERE in_app AND read_at IS NULL;
CREATE INDEX notifications_stream_sequence ON notifications (stream_sequence);

-- A room as the notifications need it.
CREATE TABLE notification_rooms (
    room_id           UUID PRIMARY KEY,
    host_id           UUID NOT NULL,
    name              TEXT NOT NULL,
    scheduled_at      TIMESTAMPTZ,
    -- 0 with RoomCreated, one more per RoomRescheduled.
    schedule_sequence BIGINT NOT NULL DEFAULT 0,
    -- Someone has joined at least once (meeting_started goes out once).
    started           BOOLEAN NOT NULL DEFAULT FALSE,
    -- Ended or cancelled: no more reminders.
    ended             BOOLEAN NOT NULL DEFAULT FALSE
);

-- Invitations, one per invitation aggregate; `invitee_id` is null for an email
-- invitation not yet bound to an account.
CREATE TABLE notification_invitees (
    invitation_id UUID PRIMARY KEY,
    room_id       UUID NOT NULL,
    invitee_id    UUID,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'declined', 'revoked'))
);
CREATE INDEX notification_invitees_room ON notification_invitees (room_id);
CREATE INDEX notification_invitees_invitee ON notification_invitees (invitee_id);

-- The names of users, so a notification names its actor.
CREATE TABLE notification_users (
    user_id    UUID PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name  TEXT NOT NULL
);

-- What each user changed of their settings; absent means the defaults of
-- `rapat_domain::settings` (reminder 10 minutes, in-app and email on, push off).
CREATE TABLE notification_settings (
    user_id          UUID PRIMARY KEY,
    reminder_minutes INTEGER,
    -- `{<kind>: {inApp, email, push}}` for the kinds the user changed.
    channels         JSONB NOT NULL DEFAULT '{}'
);

-- Reminders still to fire: one per (room, schedule, recipient), the host and
-- every invitee who has not declined nor been revoked, due `reminderMinutes`
-- before `scheduled_at`. The reminder loop reads it (NOTIFY
-- `rapat_reminder_timers` when it changes) and fires `MeetingReminderDue`, which
-- removes the row.
CREATE TABLE reminder_timers (
    room_id           UUID NOT NULL,
    schedule_sequence BIGINT NOT NULL,
    recipient_id      UUID NOT NULL,
    due_at            TIMESTAMPTZ NOT NULL,
    -- The time of the event that set `due_at`: a meeting scheduled (or a lead
    -- chosen) inside the reminder's window is reminded at once, and that is not
    -- late. The scheduler fires at GREATEST(due_at, armed_at).
    armed_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, schedule_sequence, recipient_id)
);
CREATE INDEX reminder_timers_fire_at ON reminder_timers (GREATEST(due_at, armed_at));

-- Reminders that fired, so a later change (an invitee accepting again, a new
-- reminder lead) does not arm the same (room, schedule, recipient) twice.
CREATE TABLE reminders_fired (
    room_id           UUID NOT NULL,
    schedule_sequence BIGINT NOT NULL,
    recipient_id      UUID NOT NULL,
    PRIMARY KEY (room_id, schedule_sequence, recipient_id)
);

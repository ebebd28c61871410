-- Invitations to rooms (SPEC §6), one row per invitation aggregate: a room and an
-- invitee, who is an account (`invitee_id`), an email address (`email`), or an
-- email address later bound to the account registered with it (both).
CREATE TABLE invitations (
    -- The invitation aggregate's id (`Invitation::id_for`).
    id          UUID PRIMARY KEY,
    room_id     UUID NOT NULL,
    host_id     UUID NOT NULL,
    invitee_id  UUID,
    email       TEXT,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'declined', 'revoked')),
    -- When it was last issued (a re-issue after a decline or revocation is a new invitation).
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CHECK (invitee_id IS NOT NULL OR email IS NOT NULL)
);
CREATE INDEX invitations_room ON invitations (room_id, created_at);
CREATE INDEX invitations_invitee ON invitations (invitee_id, status) WHERE invitee_id IS NOT NULL;
CREATE INDEX invitations_email ON invitations (email, status) WHERE email IS NOT NULL;

-- What each user set of their settings; NULL (or a kind missing from
-- `notifications`) means the default, which the reader fills in
-- (`UserSettings::effective`), so a changed default reaches everyone who kept it.
CREATE TABLE user_settings (
    user_id          UUID PRIMARY KEY,
    timezone         TEXT,
    locale           TEXT,
    reminder_minutes INTEGER,
    -- `{"<kind>": {"inApp": .., "email": .., "push": ..}}`, the kinds set.
    notifications    JSONB NOT NULL DEFAULT '{}',
    updated_at       TIMESTAMPTZ NOT NULL
);

-- Email claims: which account holds each address, and whether its registration
-- completed. The registration manager (gateway/src/registration.rs) reads the
-- pending ones to finish or undo registrations that were cut short.
CREATE TABLE email_claims (
    -- The claim aggregate's id (`Email::claim_id`).
    claim_id      UUID PRIMARY KEY,
    email         TEXT NOT NULL,
    -- The account that holds (or, once released, last held) the claim.
    account_id    UUID NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'released')),
    claimed_at    TIMESTAMPTZ NOT NULL,
    -- The claim aggregate's version at its latest `EmailClaimed`: one claim of the
    -- address, so that commands about it get ids of their own.
    claim_version BIGINT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX email_claims_pending ON email_claims (claimed_at) WHERE state = 'pending';

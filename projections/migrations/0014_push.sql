-- Web push (SPEC §7). One row per live subscription, from the `push` aggregate's
-- events (the `push_subscriptions` projection): what the push channel encrypts
-- for and sends to.
CREATE TABLE push_subscriptions (
    user_id     UUID NOT NULL,
    endpoint    TEXT NOT NULL,
    -- The subscription's P-256 public key and its authentication secret, both
    -- unpadded base64url as the browser gave them.
    p256dh      TEXT NOT NULL,
    auth_secret TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, endpoint)
);

-- The deployment's VAPID key (RFC 8292) when none is configured
-- (RAPAT_VAPID_PRIVATE_KEY): made by the first process that needs one and kept,
-- so every process of the deployment signs with the same key and browsers'
-- subscriptions (bound to its public key) stay valid. Not a read model: no
-- rebuild touches it. One row.
CREATE TABLE push_vapid_key (
    id          SMALLINT PRIMARY KEY CHECK (id = 1),
    -- The P-256 private scalar, 32 bytes in unpadded base64url.
    private_key TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Account recovery and verification (SPEC §7): whether the account's address was
-- verified with the token emailed at registration (`EmailVerified`).
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- Rebuilds now replace a projection's tables instead of emptying them in place,
-- so nothing bumps an epoch any more and running projectors need not watch one.
ALTER TABLE projection_checkpoints DROP COLUMN epoch;

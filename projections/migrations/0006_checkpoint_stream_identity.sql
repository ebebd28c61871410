-- What identifies the stream position a checkpoint stands for, written with it in
-- the batch's transaction, so a projector can tell that the stream behind it was
-- replaced or lost its tail (a checkpoint past the stream's end, or another message
-- at the checkpoint's sequence) instead of skipping new events as "already applied".
-- Times are nanoseconds since the epoch, as JetStream keeps them, so they compare
-- exactly. NULL: not recorded yet (rows from before this migration, or nothing
-- applied).
ALTER TABLE projection_checkpoints
    ADD COLUMN stream_created_ns BIGINT,
    ADD COLUMN last_message_id   TEXT,
    ADD COLUMN last_published_ns BIGINT,
    -- Set while the read model is known to have applied messages the stream no
    -- longer holds, until a rebuild from the stream replaces it: why, for people.
    ADD COLUMN stream_mismatch   TEXT;

-- Refused bodies are no longer kept whole (issue 11, part 4): a rejection
-- keeps the body's size, its SHA-256 (hex) and its first 512 bytes in
-- `received`. Rows recorded before this migration keep what they had (up to
-- 64 KiB in `received`) with NULL size and digest, and stay readable; the
-- retention pruning ([intake] rejection_retention_days) removes them in time,
-- oldest first, through the index on received_at.
ALTER TABLE rejections ADD COLUMN received_sha256 TEXT;
ALTER TABLE rejections ADD COLUMN received_size BIGINT;
CREATE INDEX rejections_received_at ON rejections (received_at);

-- +goose Up
-- The emission interval (microseconds) a key's rate-limit row was last
-- moved at: when the key's limit is raised, the renders its theoretical
-- arrival time holds are counted again at the new rate, so the raise
-- applies at once instead of after the old interval. NULL: not known.
ALTER TABLE api_key_rates ADD COLUMN interval_us INTEGER CHECK (interval_us IS NULL OR interval_us > 0);

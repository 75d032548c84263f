-- +goose Up
-- The emission interval of a rate-limit row, as store/sqlite/migrations/00009.
ALTER TABLE api_key_rates ADD COLUMN interval_us BIGINT CHECK (interval_us IS NULL OR interval_us > 0);

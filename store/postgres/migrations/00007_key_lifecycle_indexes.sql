-- +goose Up
-- The lifecycle job's indexes and the ends not to log, as
-- store/sqlite/migrations/00010.
CREATE INDEX api_keys_auto_retiring ON api_keys (retires_at) WHERE auto_retire;
CREATE INDEX api_keys_expiry_unlogged ON api_keys (expires_at) WHERE NOT end_logged;
CREATE INDEX api_keys_retirement_unlogged ON api_keys (retires_at) WHERE NOT end_logged;
UPDATE api_keys SET end_logged = TRUE
WHERE NOT end_logged AND (expires_at <= extract(epoch FROM now())::bigint OR retires_at <= extract(epoch FROM now())::bigint);

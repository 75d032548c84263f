-- +goose Up
-- The lifecycle job (every 30 s on every instance) reads only the keys
-- whose end is pending or whose auto-grace retirement may move: indexes of
-- just those, so it does not scan every key while holding the writer.
CREATE INDEX api_keys_auto_retiring ON api_keys (retires_at) WHERE auto_retire;
CREATE INDEX api_keys_expiry_unlogged ON api_keys (expires_at) WHERE NOT end_logged;
CREATE INDEX api_keys_retirement_unlogged ON api_keys (retires_at) WHERE NOT end_logged;
-- A key that ended before its end was logged at all (a database of
-- release 1) ended long ago: it is not logged as ending now.
UPDATE api_keys SET end_logged = 1
WHERE NOT end_logged AND (expires_at <= CAST(strftime('%s', 'now') AS INTEGER) OR retires_at <= CAST(strftime('%s', 'now') AS INTEGER));

-- +goose Up
-- Key insight (SPEC §7): usage per key per day, the key's last client, an
-- activity log, and rotation that retires the old key by watching traffic.
ALTER TABLE api_keys ADD COLUMN first_used_at INTEGER;
ALTER TABLE api_keys ADD COLUMN last_ip TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN last_user_agent TEXT NOT NULL DEFAULT '';
-- grace=auto: retires 1 hour after its last use once its replacement was
-- used, by retires_at (7 days after the rotation) at the latest.
ALTER TABLE api_keys ADD COLUMN auto_retire INTEGER NOT NULL DEFAULT 0 CHECK (auto_retire IN (0, 1));
-- Set once key.expired or key.retired has been logged for the key.
ALTER TABLE api_keys ADD COLUMN end_logged INTEGER NOT NULL DEFAULT 0 CHECK (end_logged IN (0, 1));

ALTER TABLE key_usage_days ADD COLUMN requests INTEGER NOT NULL DEFAULT 0 CHECK (requests >= 0);
ALTER TABLE key_usage_days ADD COLUMN renders INTEGER NOT NULL DEFAULT 0 CHECK (renders >= 0);
ALTER TABLE key_usage_days ADD COLUMN errors INTEGER NOT NULL DEFAULT 0 CHECK (errors >= 0);

-- A key's refused requests per day, by error code.
CREATE TABLE key_usage_errors (
    api_key_id INTEGER NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    day        INTEGER NOT NULL,
    code       TEXT    NOT NULL CHECK (length(code) BETWEEN 1 AND 40),
    count      INTEGER NOT NULL CHECK (count > 0),
    PRIMARY KEY (api_key_id, day, code)
);

-- The client addresses a key was used from per day (a few dozen at most
-- are kept: enough to tell a key used from more than 5).
CREATE TABLE key_day_ips (
    api_key_id INTEGER NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    day        INTEGER NOT NULL,
    ip         TEXT    NOT NULL CHECK (length(ip) BETWEEN 2 AND 45),
    PRIMARY KEY (api_key_id, day, ip)
);

-- What happened to an account and its keys, appended and never changed:
-- the 1-year clean-up and the account's deletion are the only ways out.
CREATE TABLE activity (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at               INTEGER NOT NULL,
    event            TEXT    NOT NULL CHECK (event IN ('account.created', 'login.succeeded', 'login.failed',
                         'password.changed', 'profile.changed', 'key.created', 'key.deactivated', 'key.activated',
                         'key.rotated', 'key.retired', 'key.deleted', 'key.settings_changed', 'key.expired',
                         'key.leak_reported', 'coupon.redeemed')),
    actor            TEXT    NOT NULL CHECK (actor IN ('session', 'key', 'operator', 'system', 'scanner')),
    actor_key_masked TEXT    NOT NULL DEFAULT '',
    key_id           INTEGER,
    key_label        TEXT    NOT NULL DEFAULT '',
    key_masked       TEXT    NOT NULL DEFAULT '',
    ip               TEXT    NOT NULL DEFAULT '',
    user_agent       TEXT    NOT NULL DEFAULT '',
    detail           TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX activity_user ON activity (user_id, id);
CREATE INDEX activity_user_key ON activity (user_id, key_id, id);
CREATE INDEX activity_at ON activity (at);
-- +goose StatementBegin
CREATE TRIGGER activity_append_only BEFORE UPDATE ON activity
BEGIN
    SELECT RAISE(ABORT, 'activity is append-only');
END;
-- +goose StatementEnd

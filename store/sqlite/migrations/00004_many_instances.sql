-- +goose Up
-- The first release kept its own record of migrations; goose keeps it now.
DROP TABLE IF EXISTS schema_migrations;

-- Rotation gets fields of its own, so that an expiry the owner chooses can
-- exist beside it: what expires_at meant until now (the end of a rotated
-- key's grace period) is its retirement.
ALTER TABLE api_keys ADD COLUMN rotated_at INTEGER;
ALTER TABLE api_keys ADD COLUMN retires_at INTEGER;
UPDATE api_keys
   SET retires_at = expires_at,
       rotated_at = coalesce((SELECT r.created_at FROM api_keys r WHERE r.id = api_keys.replaced_by), expires_at),
       expires_at = NULL
 WHERE expires_at IS NOT NULL;
DROP INDEX IF EXISTS api_keys_auth;
CREATE INDEX api_keys_auth ON api_keys (key_hash, user_id, active, expires_at, retires_at, prefix, last4, label);

-- Sign-in attempts are counted before their password is checked.
ALTER TABLE login_failures RENAME TO login_attempts;
ALTER TABLE login_attempts RENAME COLUMN failed_at TO attempted_at;
DROP INDEX IF EXISTS login_failures_email;
CREATE INDEX login_attempts_email ON login_attempts (email, attempted_at);

-- Only signed-in sessions are stored; a signed-out visitor's lives in its
-- cookie.
DELETE FROM sessions WHERE user_id IS NULL;

-- A credit set aside for a render in progress, on any server. One that
-- outlives its expiry (its server died mid-render) no longer counts.
CREATE TABLE credit_reservations (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    api_key_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL CHECK (expires_at > created_at)
);
CREATE INDEX credit_reservations_user_id ON credit_reservations (user_id, expires_at);

-- Per-key rate limits, shared by every server: the theoretical arrival
-- time (Unix microseconds) of the key's next request (GCRA). No row is a
-- full bucket.
CREATE TABLE api_key_rates (
    api_key_id INTEGER PRIMARY KEY,
    tat        INTEGER NOT NULL
);

-- A new key on its way from the request that made it to the page that
-- shows it once, sealed under the session secret, by the hash of a token
-- only the user's session holds.
CREATE TABLE key_reveals (
    token_hash BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sealed     BLOB    NOT NULL,
    expires_at INTEGER NOT NULL
);

-- What each write changed that another process may hold in its caches
-- (a key, or a user's account, or all of a user's keys): every process
-- reads what is new here.
CREATE TABLE changes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id   INTEGER,
    user_id  INTEGER,
    all_keys INTEGER NOT NULL DEFAULT 0 CHECK (all_keys IN (0, 1)),
    at       INTEGER NOT NULL
);

-- +goose Up
-- The schema of PeekShot's first release. A database that release made (it
-- kept its own record of migrations, dropped in 00004) already has all of
-- this, so every statement of 00001 to 00003 may run again on it.
-- Accounts, server-side sessions, API keys, the credits ledger and coupons.
-- Times are Unix seconds (UTC). Invariants live here as constraints.

CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE CHECK (email <> '' AND email = lower(trim(email))),
    name          TEXT    NOT NULL DEFAULT '',
    password_hash TEXT    NOT NULL,
    credits       INTEGER NOT NULL DEFAULT 0 CHECK (credits >= 0),
    created_at    INTEGER NOT NULL
);

-- The cookie holds the session id; only its SHA-256 is stored.
CREATE TABLE IF NOT EXISTS sessions (
    id_hash      BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id      INTEGER REFERENCES users (id) ON DELETE CASCADE,
    data         BLOB    NOT NULL DEFAULT x'',
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user_id ON sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_last_seen_at ON sessions (last_seen_at);

-- A key is stored as the SHA-256 of the whole key, plus what is needed to
-- recognise it (display prefix, last four characters). Never the key.
CREATE TABLE IF NOT EXISTS api_keys (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label         TEXT    NOT NULL DEFAULT '' CHECK (length(label) <= 64),
    key_hash      BLOB    NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    prefix        TEXT    NOT NULL CHECK (length(prefix) = 8),
    last4         TEXT    NOT NULL CHECK (length(last4) = 4),
    active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    replaced_by   INTEGER REFERENCES api_keys (id) ON DELETE SET NULL,
    last_used_at  INTEGER,
    request_count INTEGER NOT NULL DEFAULT 0 CHECK (request_count >= 0)
);
CREATE INDEX IF NOT EXISTS api_keys_user_id ON api_keys (user_id, id);

CREATE TABLE IF NOT EXISTS coupons (
    id              INTEGER PRIMARY KEY,
    code            TEXT    NOT NULL UNIQUE CHECK (code <> '' AND code = upper(code)),
    credits         INTEGER NOT NULL CHECK (credits > 0),
    max_redemptions INTEGER CHECK (max_redemptions IS NULL OR max_redemptions > 0),
    redemptions     INTEGER NOT NULL DEFAULT 0
                    CHECK (redemptions >= 0 AND (max_redemptions IS NULL OR redemptions <= max_redemptions)),
    expires_at      INTEGER,
    disabled_at     INTEGER,
    created_at      INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS coupon_redemptions (
    coupon_id  INTEGER NOT NULL REFERENCES coupons (id),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credits    INTEGER NOT NULL CHECK (credits > 0),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (coupon_id, user_id)
);
CREATE INDEX IF NOT EXISTS coupon_redemptions_user_id ON coupon_redemptions (user_id, created_at);

-- Every change of a balance is a row here, written in the same transaction
-- as the change, so users.credits always equals the sum of its rows.
CREATE TABLE IF NOT EXISTS credit_ledger (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    delta      INTEGER NOT NULL CHECK (delta <> 0),
    reason     TEXT    NOT NULL CHECK (reason IN ('signup', 'coupon', 'render')),
    coupon_id  INTEGER REFERENCES coupons (id),
    api_key_id INTEGER REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS credit_ledger_user_id ON credit_ledger (user_id, id);

-- Failed sign-ins per normalised email, for throttling.
CREATE TABLE IF NOT EXISTS login_failures (
    email     TEXT    NOT NULL,
    failed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_email ON login_failures (email, failed_at);

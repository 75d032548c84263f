-- +goose Up
-- Signed links (SPEC §8): a key's signing secret, sealed (AES-256-GCM) by
-- the web layer under a key derived from the server's session secret, so
-- the database never holds it in clear; recognised by its display prefix
-- and last four characters like a key. A key has one at most.
CREATE TABLE key_signing_secrets (
    api_key_id INTEGER PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    prefix     TEXT    NOT NULL CHECK (length(prefix) = 8 AND substr(prefix, 1, 4) = 'pss_'),
    last4      TEXT    NOT NULL CHECK (length(last4) = 4),
    -- nonce, ciphertext and tag: never shorter than the secret itself.
    sealed     BLOB    NOT NULL CHECK (length(sealed) > 42),
    created_at INTEGER NOT NULL
);

-- Leaked keys (SPEC §8): the latest report of a secret scanner that a key
-- was found in public, until its owner deals with it (a rotation after it,
-- a deletion, or dismissed_at).
CREATE TABLE key_leak_reports (
    api_key_id     INTEGER PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    reported_at    INTEGER NOT NULL,
    url            TEXT    NOT NULL CHECK (length(url) <= 2048),
    source         TEXT    NOT NULL DEFAULT '' CHECK (length(source) <= 100),
    -- When a report turned the key off (NULL: it was off already).
    deactivated_at INTEGER,
    dismissed_at   INTEGER
);

-- +goose Up
-- Signed links and leaked keys (SPEC §8), as store/sqlite/migrations/00007.
CREATE TABLE key_signing_secrets (
    api_key_id BIGINT PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    prefix     TEXT   NOT NULL CHECK (char_length(prefix) = 8 AND left(prefix, 4) = 'pss_'),
    last4      TEXT   NOT NULL CHECK (char_length(last4) = 4),
    sealed     BYTEA  NOT NULL CHECK (length(sealed) > 42),
    created_at BIGINT NOT NULL
);

CREATE TABLE key_leak_reports (
    api_key_id     BIGINT PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    reported_at    BIGINT NOT NULL,
    url            TEXT   NOT NULL CHECK (char_length(url) <= 2048),
    source         TEXT   NOT NULL DEFAULT '' CHECK (char_length(source) <= 100),
    deactivated_at BIGINT,
    dismissed_at   BIGINT
);

-- +goose Up
-- Signed links paid for, as store/sqlite/migrations/00008.
CREATE TABLE signed_link_charges (
    api_key_id BIGINT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    link       BYTEA  NOT NULL CHECK (length(link) = 32),
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, link)
);

-- +goose Up
-- A signed link is paid for once in its lifetime, whichever instance
-- renders it and however often (its image is only cached in each
-- instance's memory): the links charged, by a hash of the key and the
-- link's signature (not a secret: it opens nothing), until they expire.
CREATE TABLE signed_link_charges (
    api_key_id INTEGER NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    link       BLOB    NOT NULL CHECK (length(link) = 32),
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, link)
);

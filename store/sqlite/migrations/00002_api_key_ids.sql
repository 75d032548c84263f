-- +goose Up
-- API key ids are never reused. Without AUTOINCREMENT SQLite gives a new
-- row the largest id plus one, so deleting the newest key handed its id to
-- the next key created (by anyone), which then inherited what was still on
-- its way to the old one: usage counted in memory, its rate-limit bucket.
-- api_keys itself cannot gain AUTOINCREMENT without being rebuilt, so its
-- ids are drawn from this table, whose high-water mark SQLite keeps in
-- sqlite_sequence; the table itself stays empty.
CREATE TABLE IF NOT EXISTS api_key_ids (id INTEGER PRIMARY KEY AUTOINCREMENT);
INSERT INTO api_key_ids (id) SELECT coalesce(max(id), 0) FROM api_keys;
DELETE FROM api_key_ids;

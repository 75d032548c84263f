-- +goose Up
-- Key policies (SPEC §6): what a key may do beyond working at all. Lists
-- are stored one item a line (scopes by commas); empty means no
-- restriction, NULL numbers the server's default or no cap.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'screenshots,html_to_image';
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN allowed_targets TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN rate_limit INTEGER CHECK (rate_limit IS NULL OR rate_limit > 0);
ALTER TABLE api_keys ADD COLUMN monthly_budget INTEGER CHECK (monthly_budget IS NULL OR monthly_budget > 0);
-- The lifetime an expiry was chosen as (seconds), which a rotation counts
-- again; NULL for a date or never.
ALTER TABLE api_keys ADD COLUMN expiry_lifetime INTEGER CHECK (expiry_lifetime IS NULL OR expiry_lifetime > 0);

-- What the key lookup of every API request reads, policy included, from
-- the index alone.
DROP INDEX IF EXISTS api_keys_auth;
CREATE INDEX api_keys_auth ON api_keys (key_hash, user_id, active, expires_at, retires_at, prefix, last4, label,
    scopes, allowed_ips, allowed_targets, rate_limit, monthly_budget);

-- A key's usage per day (UTC midnight, Unix seconds). credits is written
-- with each charge, in its transaction, so a monthly budget is exact.
CREATE TABLE key_usage_days (
    api_key_id INTEGER NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    day        INTEGER NOT NULL,
    credits    INTEGER NOT NULL DEFAULT 0 CHECK (credits >= 0),
    PRIMARY KEY (api_key_id, day)
);

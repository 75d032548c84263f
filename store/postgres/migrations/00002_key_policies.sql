-- +goose Up
-- Key policies (SPEC §6), as store/sqlite/migrations/00005.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'screenshots,html_to_image';
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN allowed_targets TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN rate_limit BIGINT CHECK (rate_limit IS NULL OR rate_limit > 0);
ALTER TABLE api_keys ADD COLUMN monthly_budget BIGINT CHECK (monthly_budget IS NULL OR monthly_budget > 0);
ALTER TABLE api_keys ADD COLUMN expiry_lifetime BIGINT CHECK (expiry_lifetime IS NULL OR expiry_lifetime > 0);

DROP INDEX api_keys_auth;
CREATE UNIQUE INDEX api_keys_auth ON api_keys (key_hash)
    INCLUDE (user_id, active, expires_at, retires_at, prefix, last4, label,
             scopes, allowed_ips, allowed_targets, rate_limit, monthly_budget);

CREATE TABLE key_usage_days (
    api_key_id BIGINT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    day        BIGINT NOT NULL,
    credits    BIGINT NOT NULL DEFAULT 0 CHECK (credits >= 0),
    PRIMARY KEY (api_key_id, day)
);

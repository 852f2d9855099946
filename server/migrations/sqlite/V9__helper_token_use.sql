-- A helper token's last use (at most once a minute per token and server): who still uses a
-- token before it is revoked.
ALTER TABLE helper_tokens ADD COLUMN last_used_at TEXT;

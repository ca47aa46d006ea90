-- Inverse of 20261202_05_k4v7c-token-expiry (tokens that had an expiry then never expire).
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_expires_at_check;

ALTER TABLE api_tokens DROP COLUMN expires_at;

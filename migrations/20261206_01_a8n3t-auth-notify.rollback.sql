-- Inverse of 20261206_01_a8n3t-auth-notify: no triggers, no function.
DROP TRIGGER users_notify_auth_truncate ON users;
DROP TRIGGER api_tokens_notify_auth_truncate ON api_tokens;
DROP TRIGGER users_notify_auth ON users;
DROP TRIGGER api_tokens_notify_auth ON api_tokens;
DROP FUNCTION mnemo_notify_auth();

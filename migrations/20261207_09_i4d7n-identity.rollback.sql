-- Inverse of 20261207_09_i4d7n-identity: no triggers, function or tables of identity.
DROP TRIGGER auth_sessions_notify_auth_truncate ON auth_sessions;
DROP TRIGGER auth_sessions_notify_auth_delete ON auth_sessions;
DROP TRIGGER auth_sessions_notify_auth_update ON auth_sessions;
DROP FUNCTION mnemo_notify_auth_session();
DROP TABLE login_failures;
DROP TABLE refresh_tokens;
DROP TABLE auth_sessions;
DROP TABLE user_passwords;

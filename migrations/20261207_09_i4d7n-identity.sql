-- Identity (README "Identity"): password sign-in with short-lived access tokens (JWTs) and
-- rotating refresh tokens.
-- * user_passwords: a user's password as an Argon2id hash (the PHC string, parameters
--   included, so that a change of APP_ARGON2_* is noticed and the hash redone at the next
--   sign-in); gone with the user.
-- * auth_sessions: one per sign-in (a "family" of refresh tokens). Every time is the app's
--   clock (a parameter of the queries), so that tests move time without sleeping. Revoked
--   (logout, reuse of a refresh token, a password change) with revoked_at and why.
-- * refresh_tokens: the family's tokens, kept as SHA-256 hashes (random tokens: a fast hash
--   is enough), never in clear, and found by that hash (their key: nothing names them by
--   another). One current (used_at NULL) per family, which the partial unique index
--   enforces; a rotation sets used_at, and presenting a used one again is reuse.
-- * login_failures: failed sign-ins per (normalized username, client address), for the
--   lockout; rows exist also for usernames nobody has (nothing tells them apart), and a row
--   that saw no failure for APP_LOGIN_FAILURE_WINDOW_SECONDS is deleted (by last_failed_at).
-- Cached authentication (app/token_cache.py) keys an access token's user by its session: a
-- session revoked, shortened or deleted NOTIFYs mnemo_auth 'user:<id>' (as the triggers of
-- 20261206_01 do for api_tokens and users), so that every process drops it at once. A
-- rotation moves expires_at later only, which notifies nothing.
-- depends: 20261207_08_k2r5v-profile-notify

CREATE TABLE user_passwords (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    hash       text NOT NULL CHECK (char_length(hash) BETWEEN 1 AND 1000),
    updated_at timestamptz NOT NULL
);

CREATE TABLE auth_sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text CHECK (revoked_reason IN ('logout', 'refresh_token_reused',
                                                 'password_changed', 'password_set')),
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX auth_sessions_user_id_idx ON auth_sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
CREATE UNIQUE INDEX refresh_tokens_one_current ON refresh_tokens (session_id)
    WHERE used_at IS NULL;

CREATE TABLE login_failures (
    username       text NOT NULL CHECK (char_length(username) <= 256),
    client         text NOT NULL CHECK (char_length(client) <= 256),
    failures       integer NOT NULL CHECK (failures > 0),
    last_failed_at timestamptz NOT NULL,
    locked_until   timestamptz,
    PRIMARY KEY (username, client)
);
CREATE INDEX login_failures_last_failed_at_idx ON login_failures (last_failed_at);

CREATE FUNCTION mnemo_notify_auth_session() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('mnemo_auth', 'all');
    ELSE
        PERFORM pg_notify('mnemo_auth', 'user:' || OLD.user_id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER auth_sessions_notify_auth_update
    AFTER UPDATE ON auth_sessions
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR NEW.expires_at < OLD.expires_at
          OR NEW.user_id <> OLD.user_id)
    EXECUTE FUNCTION mnemo_notify_auth_session();

CREATE TRIGGER auth_sessions_notify_auth_delete
    AFTER DELETE ON auth_sessions
    FOR EACH ROW EXECUTE FUNCTION mnemo_notify_auth_session();

CREATE TRIGGER auth_sessions_notify_auth_truncate
    AFTER TRUNCATE ON auth_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION mnemo_notify_auth_session();

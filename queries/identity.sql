-- Identity (README "Identity"): users' passwords, sign-in sessions with their rotating refresh
-- tokens, and the login-failure counters of the lockout. Every time a query compares or
-- stores is the app's clock, a parameter ($n now), never now(): tests move it.

-- name: get_login
-- The user of a username (active or not) with their password's hash (NULL: no password).
-- returns: User + password_hash
-- uses: users_username_key, user_passwords_pkey
-- $1 username text              normalized: trimmed, lower-cased
SELECT u.id, u.username, u.display_name, u.avatar_url, u.metadata,
       u.created_at, u.updated_at, u.deactivated_at, p.hash AS password_hash
  FROM users AS u
  LEFT JOIN user_passwords AS p ON p.user_id = u.id
 WHERE u.username = $1;

-- name: get_password_hash
-- A user's password hash; no row when they have none.
-- returns: value
-- uses: user_passwords_pkey
-- $1 user_id uuid
SELECT hash FROM user_passwords WHERE user_id = $1;

-- name: upsert_password
-- Set (or replace) a user's password hash. A user that does not exist violates the foreign
-- key (NotFound).
-- returns: nothing
-- uses: user_passwords_pkey
-- $1 user_id uuid
-- $2 hash text                  Argon2id PHC string
-- $3 now timestamptz
INSERT INTO user_passwords (user_id, hash, updated_at)
VALUES ($1, $2, $3)
ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at;

-- name: update_password_hash
-- The same password hashed again with the current parameters, unless the password changed
-- meanwhile (the old hash is no longer there).
-- returns: nothing
-- uses: user_passwords_pkey
-- $1 user_id uuid
-- $2 old_hash text
-- $3 new_hash text
UPDATE user_passwords SET hash = $3 WHERE user_id = $1 AND hash = $2;

-- name: insert_auth_session
-- A new sign-in session of a user, valid until $4.
-- returns: AuthSession
-- $1 id uuid
-- $2 user_id uuid
-- $3 now timestamptz
-- $4 expires_at timestamptz
INSERT INTO auth_sessions (id, user_id, created_at, expires_at)
VALUES ($1, $2, $3, $4)
RETURNING id, user_id, created_at, expires_at, revoked_at, revoked_reason;

-- name: insert_refresh_token
-- The current refresh token of a session (only its hash). A session holds one current token
-- (refresh_tokens_one_current): a second is a unique violation.
-- returns: nothing
-- $1 session_id uuid
-- $2 token_hash bytea
-- $3 now timestamptz
INSERT INTO refresh_tokens (session_id, token_hash, created_at)
VALUES ($1, $2, $3);

-- name: rotate_refresh_token
-- Rotation, in one statement: the presented token, if it is its session's current one and
-- the session is live (unrevoked, unexpired, its user active), is marked used; the session's
-- expiry moves to $3; a new current token ($4) is stored. No row: nothing changed (an
-- unknown, used or revoked token, an expired session, a deactivated user: the gateway asks
-- which). Two rotations of one token at once: the second finds it used.
-- returns: AuthSession
-- uses: refresh_tokens_pkey, auth_sessions_pkey, users_pkey
-- $1 token_hash bytea
-- $2 now timestamptz
-- $3 expires_at timestamptz
-- $4 new_token_hash bytea
WITH used AS (
    UPDATE refresh_tokens AS t
       SET used_at = $2
      FROM auth_sessions AS s, users AS u
     WHERE t.token_hash = $1
       AND t.used_at IS NULL
       AND s.id = t.session_id
       AND s.revoked_at IS NULL
       AND s.expires_at > $2
       AND u.id = s.user_id
       AND u.deactivated_at IS NULL
    RETURNING t.session_id
), extended AS (
    UPDATE auth_sessions AS s
       SET expires_at = greatest(s.expires_at, $3)
      FROM used
     WHERE s.id = used.session_id
    RETURNING s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, s.revoked_reason
), issued AS (
    INSERT INTO refresh_tokens (session_id, token_hash, created_at)
    SELECT extended.id, $4, $2 FROM extended
)
SELECT id, user_id, created_at, expires_at, revoked_at, revoked_reason FROM extended;

-- name: get_refresh_token
-- The session of a refresh token, current or used, and when the token was used (NULL:
-- current); no row for a token never issued.
-- returns: AuthSession + used_at
-- uses: refresh_tokens_pkey, auth_sessions_pkey
-- $1 token_hash bytea
SELECT s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, s.revoked_reason, t.used_at
  FROM refresh_tokens AS t
  JOIN auth_sessions AS s ON s.id = t.session_id
 WHERE t.token_hash = $1;

-- name: revoke_auth_session
-- Revoke a session (its refresh tokens stop working, and its access tokens, cached or not:
-- the trigger NOTIFYs mnemo_auth). No row when it was revoked already or does not exist.
-- returns: AuthSession
-- uses: auth_sessions_pkey
-- $1 id uuid
-- $2 now timestamptz
-- $3 reason text                logout, refresh_token_reused, password_changed, password_set
UPDATE auth_sessions
   SET revoked_at = $2, revoked_reason = $3
 WHERE id = $1
   AND revoked_at IS NULL
RETURNING id, user_id, created_at, expires_at, revoked_at, revoked_reason;

-- name: revoke_user_auth_sessions
-- Revoke every live session of a user but $4 (the caller's own, or NULL: all); returns how
-- many.
-- returns: value
-- uses: auth_sessions_user_id_idx
-- $1 user_id uuid
-- $2 now timestamptz
-- $3 reason text
-- $4 keep_id uuid               NULL: revoke them all
WITH revoked AS (
    UPDATE auth_sessions
       SET revoked_at = $2, revoked_reason = $3
     WHERE user_id = $1
       AND revoked_at IS NULL
       AND expires_at > $2
       AND id IS DISTINCT FROM $4::uuid
    RETURNING 1
)
SELECT count(*) FROM revoked;

-- name: delete_expired_auth_sessions
-- Delete a user's sessions (and their refresh tokens) that expired before $2: run at each of
-- their sign-ins, so a user's sessions stay as many as they have live ones.
-- returns: nothing
-- uses: auth_sessions_user_id_idx, refresh_tokens_session_id_idx (the cascade)
-- $1 user_id uuid
-- $2 now timestamptz
DELETE FROM auth_sessions WHERE user_id = $1 AND expires_at <= $2;

-- name: get_session_user
-- The active user of a live session (unrevoked, unexpired at $3) that belongs to $2, with the
-- seconds the session has left: who an access token (JWT) authenticates.
-- returns: User + expires_in
-- uses: auth_sessions_pkey, users_pkey
-- $1 session_id uuid
-- $2 user_id uuid
-- $3 now timestamptz
SELECT u.id, u.username, u.display_name, u.avatar_url, u.metadata,
       u.created_at, u.updated_at, u.deactivated_at,
       extract(epoch FROM s.expires_at - $3)::float8 AS expires_in
  FROM auth_sessions AS s
  JOIN users AS u ON u.id = s.user_id
 WHERE s.id = $1
   AND s.user_id = $2
   AND s.revoked_at IS NULL
   AND s.expires_at > $3
   AND u.deactivated_at IS NULL;

-- name: get_login_lock
-- When the lock of a (username, client address) pair ends, if it is locked at $3.
-- returns: value
-- uses: login_failures_pkey
-- $1 username text
-- $2 client text
-- $3 now timestamptz
SELECT locked_until
  FROM login_failures
 WHERE username = $1
   AND client = $2
   AND locked_until > $3;

-- name: upsert_login_attempt
-- Count a sign-in attempt of the pair before its password is checked, as a failure (a
-- success then deletes the count: delete_login_failures), so that attempts made at once are
-- each counted, and those past the free ones refused, before any is checked. Nothing is
-- counted, and no row returned, while the pair is locked at $3. A count whose last failure is
-- older than $4 starts again at 1. The first $5 failures are free; each one after locks the
-- pair for $6 seconds, doubled for each failure beyond the first lock (the exponent bounded,
-- so no overflow), at most $7 seconds.
-- returns: columns failures, locked_until
-- uses: login_failures_pkey
-- $1 username text
-- $2 client text
-- $3 now timestamptz
-- $4 stale_before timestamptz
-- $5 free_failures int4
-- $6 first_lock_seconds float8
-- $7 max_lock_seconds float8
INSERT INTO login_failures AS f (username, client, failures, last_failed_at, locked_until)
VALUES ($1, $2, 1, $3::timestamptz,
        CASE WHEN 1 > $5::int4
             THEN $3::timestamptz + make_interval(secs => least($6::float8, $7::float8)) END)
ON CONFLICT (username, client) DO UPDATE
   -- The new count is written out twice: SET cannot read the value it assigns.
   SET failures = CASE WHEN f.last_failed_at < $4::timestamptz THEN 1
                       ELSE least(f.failures, 1000000) + 1 END,
       last_failed_at = $3::timestamptz,
       locked_until = CASE
           WHEN (CASE WHEN f.last_failed_at < $4::timestamptz THEN 1
                      ELSE least(f.failures, 1000000) + 1 END) > $5::int4
           THEN $3::timestamptz + make_interval(secs => least($7::float8,
                $6::float8 * power(2::float8, least(
                    (CASE WHEN f.last_failed_at < $4::timestamptz THEN 1
                          ELSE least(f.failures, 1000000) + 1 END) - $5::int4 - 1, 60))))
       END
 WHERE f.locked_until IS NULL OR f.locked_until <= $3::timestamptz
RETURNING failures, locked_until;

-- name: delete_login_failures
-- A successful sign-in: the pair's count starts again.
-- returns: nothing
-- uses: login_failures_pkey
-- $1 username text
-- $2 client text
DELETE FROM login_failures WHERE username = $1 AND client = $2;

-- name: delete_stale_login_failures
-- Delete at most $3 counters whose last failure is older than $1 and that are not locked
-- at $2, the oldest first: run after each failure, so that the table holds only the counters
-- of recent failures.
-- returns: value
-- uses: login_failures_last_failed_at_idx
-- $1 stale_before timestamptz
-- $2 now timestamptz
-- $3 limit int8
-- (By ctid: a join to the pairs would be hashed over the whole table by the generic plan, which
-- does not know $3 is small. A row changed meanwhile has another ctid and is left for later.)
WITH deleted AS (
    DELETE FROM login_failures
     WHERE ctid = ANY (ARRAY(
               SELECT ctid
                 FROM login_failures
                WHERE last_failed_at < $1
                  AND (locked_until IS NULL OR locked_until <= $2)
                ORDER BY last_failed_at
                LIMIT $3))
    RETURNING 1
)
SELECT count(*) FROM deleted;

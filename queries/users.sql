-- Users and their API tokens.

-- name: insert_user
-- Create a user; a taken username violates users_username_key (Conflict).
-- returns: User
-- $1 id uuid
-- $2 username text
-- $3 display_name text          may be NULL
-- $4 avatar_url text            may be NULL
-- $5 metadata jsonb
INSERT INTO users (id, username, display_name, avatar_url, metadata)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, username, display_name, avatar_url, metadata, created_at, updated_at, deactivated_at;

-- name: get_user
-- One user by id, active or not.
-- returns: User
-- uses: users_pkey
-- $1 id uuid
SELECT id, username, display_name, avatar_url, metadata, created_at, updated_at, deactivated_at
  FROM users
 WHERE id = $1;

-- name: get_user_by_username
-- One user by username, active or not.
-- returns: User
-- uses: users_username_key
-- $1 username text
SELECT id, username, display_name, avatar_url, metadata, created_at, updated_at, deactivated_at
  FROM users
 WHERE username = $1;

-- name: update_user
-- Change a user's profile. A nullable field is set only when its flag is true (then NULL
-- clears it), so a patch can tell "leave it" from "clear it".
-- returns: User
-- uses: users_pkey
-- $1 id uuid
-- $2 set_display_name bool      false keeps display_name
-- $3 display_name text          the new value, NULL clears it
-- $4 set_avatar_url bool        false keeps avatar_url
-- $5 avatar_url text            the new value, NULL clears it
-- $6 metadata jsonb             NULL keeps it (it is never NULL); otherwise replaces it whole
UPDATE users
   SET display_name = CASE WHEN $2 THEN $3 ELSE display_name END,
       avatar_url = CASE WHEN $4 THEN $5 ELSE avatar_url END,
       metadata = coalesce($6, metadata),
       updated_at = now()
 WHERE id = $1
RETURNING id, username, display_name, avatar_url, metadata, created_at, updated_at, deactivated_at;

-- name: deactivate_user
-- Deactivate a user (idempotent): their tokens stop authenticating, their data stays.
-- returns: User
-- uses: users_pkey
-- $1 id uuid
UPDATE users
   SET deactivated_at = coalesce(deactivated_at, now()),
       updated_at = now()
 WHERE id = $1
RETURNING id, username, display_name, avatar_url, metadata, created_at, updated_at, deactivated_at;

-- name: get_user_locked
-- One user by id, its row locked until the transaction ends: get_user_locked then
-- insert_token in one transaction issue a user's tokens one at a time, so that each counts the
-- others' (under READ COMMITTED insert_token's snapshot is taken after the lock is granted; a
-- lock taken inside insert_token itself would leave its count on the snapshot from before the
-- wait). FOR NO KEY UPDATE conflicts with itself and with updates of the user, not with the
-- FOR KEY SHARE of foreign-key checks (new conversations, threads) or with readers.
-- returns: User
-- uses: users_pkey
-- $1 id uuid
SELECT id, username, display_name, avatar_url, metadata, created_at, updated_at, deactivated_at
  FROM users
 WHERE id = $1
   FOR NO KEY UPDATE;

-- name: insert_token
-- Store a new API token of a user, unless the user holds $6 active (unrevoked, unexpired)
-- tokens already: then no row. Only the token's SHA-256 hash is kept. The count is race-free
-- only after get_user_locked in the same transaction (issue_token).
-- returns: Token
-- uses: api_tokens_user_id_idx (the count)
-- $1 id uuid
-- $2 user_id uuid
-- $3 token_hash bytea
-- $4 name text                  may be NULL
-- $5 expires_in int8            seconds from now until it expires; NULL: never
-- $6 max_active int8            NULL: no limit
INSERT INTO api_tokens (id, user_id, token_hash, name, expires_at)
SELECT $1, $2, $3, $4, now() + make_interval(secs => $5::int8)
 WHERE $6::int8 IS NULL
    OR (SELECT count(*)
          FROM api_tokens
         WHERE user_id = $2
           AND revoked_at IS NULL
           AND (expires_at IS NULL OR expires_at > now())) < $6
RETURNING id, user_id, name, created_at, expires_at, revoked_at;

-- name: list_tokens
-- The user's active tokens (unrevoked, unexpired), newest first, at most $2 (sorted after
-- the index scan: a user holds few tokens).
-- returns: Token
-- uses: api_tokens_user_id_idx
-- $1 user_id uuid
-- $2 limit int8
SELECT id, user_id, name, created_at, expires_at, revoked_at
  FROM api_tokens
 WHERE user_id = $1
   AND revoked_at IS NULL
   AND (expires_at IS NULL OR expires_at > now())
 ORDER BY created_at DESC, id DESC
 LIMIT $2;

-- name: get_user_by_token
-- The active user owning an unrevoked, unexpired token with this hash, and the seconds the
-- token has left (NULL: it never expires), counted by the server's clock so that a cache of
-- the answer (app/token_cache.py) refuses the token from the moment it expires.
-- returns: User + expires_in
-- uses: api_tokens_token_hash_key
-- $1 token_hash bytea
SELECT u.id, u.username, u.display_name, u.avatar_url, u.metadata,
       u.created_at, u.updated_at, u.deactivated_at,
       extract(epoch FROM t.expires_at - now())::float8 AS expires_in
  FROM api_tokens AS t
  JOIN users AS u ON u.id = t.user_id
 WHERE t.token_hash = $1
   AND t.revoked_at IS NULL
   AND (t.expires_at IS NULL OR t.expires_at > now())
   AND u.deactivated_at IS NULL;

-- name: revoke_token
-- Revoke one of the caller's tokens; NULL when it is not theirs or already revoked.
-- returns: Token
-- uses: api_tokens_pkey
-- $1 user_id uuid               caller; other users' tokens are invisible
-- $2 id uuid
UPDATE api_tokens
   SET revoked_at = now()
 WHERE id = $2
   AND user_id = $1
   AND revoked_at IS NULL
RETURNING id, user_id, name, created_at, expires_at, revoked_at;

-- Runtime profiles (README "Runtime profiles"). Every query is scoped by $1 scope: the user's
-- id for a user's profiles, the nil UUID for the system's (profiles.scope, generated from
-- user_id): another user's profile is not found. secrets holds {name: {ciphertext, hint,
-- set_at}}; a profile read back shows {name: {hint, set_at}}: the ciphertexts leave the
-- database only through get_active_profile, which resolve decrypts.

-- name: insert_profile
-- Create a profile, inactive. $6 holds the secrets as {name: {ciphertext, hint}}; each gets
-- set_at now. A name taken for the kind in the scope: unique violation
-- (profiles_scope_kind_name_key, 409).
-- returns: Profile
-- uses: profiles_scope_kind_name_key
-- $1 user_id uuid               NULL: a system profile
-- $2 id uuid
-- $3 kind text
-- $4 name text
-- $5 settings jsonb
-- $6 secrets jsonb
INSERT INTO profiles AS p (id, user_id, kind, name, settings, secrets)
SELECT $2, $1::uuid, $3, $4, $5,
       COALESCE((SELECT jsonb_object_agg(s.key, s.value || jsonb_build_object('set_at', now()))
                   FROM jsonb_each($6::jsonb) AS s), '{}')
RETURNING p.id, p.user_id, p.kind, p.name, p.settings,
          (SELECT COALESCE(jsonb_object_agg(s.key, s.value - 'ciphertext'), '{}')
             FROM jsonb_each(p.secrets) AS s) AS secrets,
          p.active, p.created_at, p.updated_at;

-- name: get_profile
-- One profile of the scope. No row: missing, or another scope's.
-- returns: Profile
-- uses: profiles_pkey
-- $1 scope uuid
-- $2 id uuid
SELECT p.id, p.user_id, p.kind, p.name, p.settings,
       (SELECT COALESCE(jsonb_object_agg(s.key, s.value - 'ciphertext'), '{}')
          FROM jsonb_each(p.secrets) AS s) AS secrets,
       p.active, p.created_at, p.updated_at
  FROM profiles AS p
 WHERE p.id = $2
   AND p.scope = $1;

-- name: list_profiles
-- The scope's profiles by kind, then name; of one kind only when $2 is given. $3 rows at
-- most (the gateway asks one more than a page to know whether more follow).
-- returns: Profile
-- uses: profiles_scope_kind_name_key
-- $1 scope uuid
-- $2 kind text                  NULL: every kind
-- $3 limit int8
SELECT p.id, p.user_id, p.kind, p.name, p.settings,
       (SELECT COALESCE(jsonb_object_agg(s.key, s.value - 'ciphertext'), '{}')
          FROM jsonb_each(p.secrets) AS s) AS secrets,
       p.active, p.created_at, p.updated_at
  FROM profiles AS p
 WHERE p.scope = $1
   AND ($2::text IS NULL OR p.kind = $2::text)
 ORDER BY p.scope, p.kind, p.name
 LIMIT $3;

-- name: update_profile
-- Change a profile of the scope: its name and settings when given; the secrets of $5 set
-- ({name: {ciphertext, hint}}, each set_at now), those named in $6 removed, the others kept
-- as they are. No row: missing, or another scope's. A name taken: 409.
-- returns: Profile
-- uses: profiles_pkey
-- $1 scope uuid
-- $2 id uuid
-- $3 name text                  NULL: kept
-- $4 settings jsonb             NULL: kept
-- $5 set_secrets jsonb
-- $6 removed_secrets text[]
UPDATE profiles AS p
   SET name = COALESCE($3::text, p.name),
       settings = COALESCE($4::jsonb, p.settings),
       secrets = (p.secrets - $6::text[])
                 || COALESCE((SELECT jsonb_object_agg(s.key,
                                                      s.value || jsonb_build_object('set_at', now()))
                                FROM jsonb_each($5::jsonb) AS s), '{}'),
       updated_at = now()
 WHERE p.id = $2
   AND p.scope = $1
RETURNING p.id, p.user_id, p.kind, p.name, p.settings,
          (SELECT COALESCE(jsonb_object_agg(s.key, s.value - 'ciphertext'), '{}')
             FROM jsonb_each(p.secrets) AS s) AS secrets,
          p.active, p.created_at, p.updated_at;

-- name: update_profile_active
-- Activate a profile: in one statement, every profile of its kind in the scope is written,
-- active exactly when it is this one. Two concurrent activations in one scope and kind both
-- write every such row, so the second waits for the first and then rewrites each row as it
-- now is (READ COMMITTED re-checks an updated row): the last one wins, and exactly one stays
-- active. profiles_one_active is checked at the end of the statement (DEFERRABLE), as the
-- old and the new profile may be written in either order. No row: missing, or another
-- scope's.
-- returns: Profile
-- uses: profiles_pkey, profiles_scope_kind_name_key
-- $1 scope uuid
-- $2 id uuid
WITH target AS (
    SELECT p.kind
      FROM profiles AS p
     WHERE p.id = $2
       AND p.scope = $1
), switched AS (
    UPDATE profiles AS p
       SET active = (p.id = $2),
           updated_at = CASE WHEN p.active = (p.id = $2) THEN p.updated_at ELSE now() END
      FROM target AS t
     WHERE p.scope = $1
       AND p.kind = t.kind
    RETURNING p.id, p.user_id, p.kind, p.name, p.settings,
              (SELECT COALESCE(jsonb_object_agg(s.key, s.value - 'ciphertext'), '{}')
                 FROM jsonb_each(p.secrets) AS s) AS secrets,
              p.active, p.created_at, p.updated_at
)
SELECT sw.id, sw.user_id, sw.kind, sw.name, sw.settings, sw.secrets, sw.active, sw.created_at,
       sw.updated_at
  FROM switched AS sw
 WHERE sw.id = $2;

-- name: copy_profile
-- Duplicate a profile of the scope, inactive, secrets and all (the same ciphertexts), as $4
-- (NULL: its name with " (copy)"). No row: missing, or another scope's. A name taken: 409.
-- returns: Profile
-- uses: profiles_pkey, profiles_scope_kind_name_key
-- $1 scope uuid
-- $2 id uuid
-- $3 new_id uuid
-- $4 name text                  NULL: the original's + " (copy)"
INSERT INTO profiles AS p (id, user_id, kind, name, settings, secrets)
SELECT $3, o.user_id, o.kind, COALESCE($4::text, left(o.name, 93) || ' (copy)'), o.settings,
       o.secrets
  FROM profiles AS o
 WHERE o.id = $2
   AND o.scope = $1
RETURNING p.id, p.user_id, p.kind, p.name, p.settings,
          (SELECT COALESCE(jsonb_object_agg(s.key, s.value - 'ciphertext'), '{}')
             FROM jsonb_each(p.secrets) AS s) AS secrets,
          p.active, p.created_at, p.updated_at;

-- name: delete_profile
-- Delete a profile of the scope (an active one leaves its kind with none active there).
-- Its id; no row: missing, or another scope's.
-- returns: value
-- uses: profiles_pkey
-- $1 scope uuid
-- $2 id uuid
DELETE FROM profiles AS p
 WHERE p.id = $2
   AND p.scope = $1
RETURNING p.id;

-- name: get_active_profile
-- What a kind resolves to for a user: their active profile of the kind, else the system's
-- ($1 NULL: the system's only). secrets with their ciphertexts, for the gateway to decrypt.
-- returns: columns id, user_id, name, settings, secrets
-- uses: profiles_one_active
-- $1 user_id uuid               NULL: the system's only
-- $2 kind text
SELECT p.id, p.user_id, p.name, p.settings, p.secrets
  FROM profiles AS p
 WHERE p.scope = ANY (ARRAY[COALESCE($1::uuid, '00000000-0000-0000-0000-000000000000'::uuid),
                           '00000000-0000-0000-0000-000000000000'::uuid])
   AND p.kind = $2
   AND p.active
 ORDER BY p.user_id IS NULL
 LIMIT 1;

-- name: count_profiles_with_secrets
-- How many profiles, of every scope, hold a secret (what `mnemo keys rotate` goes through).
-- returns: value
SELECT count(*)
  FROM profiles AS p
 WHERE p.secrets <> '{}'::jsonb;

-- name: list_profile_secrets_for_rotation
-- The next $2 profiles of every scope after id $1 that hold a secret, in id order (keyset:
-- a batch of `mnemo keys rotate`), with their secrets as stored, ciphertexts included. Each
-- row is locked until the batch's transaction ends: a concurrent update waits for the batch
-- (or the batch for it, and then reads the row as that update left it), so the re-encrypted
-- secrets written back are never older than the row.
-- returns: columns id, secrets
-- uses: profiles_pkey
-- $1 after_id uuid              the nil UUID for the first batch
-- $2 limit int8
SELECT p.id, p.secrets
  FROM profiles AS p
 WHERE p.id > $1
   AND p.secrets <> '{}'::jsonb
 ORDER BY p.id
 LIMIT $2
   FOR UPDATE OF p;

-- name: update_profile_secrets_rotated
-- Write back re-encrypted secrets: $1 is {profile id: secrets as stored}, each row locked by
-- list_profile_secrets_for_rotation in the same transaction. updated_at is kept: the
-- profile's secrets are the same, under another key. The ids written.
-- returns: columns id
-- uses: profiles_pkey
-- $1 secrets jsonb
UPDATE profiles AS p
   SET secrets = r.value
  FROM jsonb_each($1::jsonb) AS r
 WHERE p.id = r.key::uuid
RETURNING p.id;

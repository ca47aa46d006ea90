-- Runtime profiles (README "Runtime profiles"): named settings of a kind (llm, rsshub...) per
-- user, or system-wide (user_id NULL, managed with the admin token), one active per kind
-- per scope.
-- * scope: the user's id, or the nil UUID for the system's profiles (no user has it: ids are
--   UUIDv7), so that every query compares one non-null key and uses the indexes.
-- * settings: the kind's non-secret settings, validated by the app against the kind's model.
-- * secrets: {name: {"ciphertext": Fernet token, "hint": "sk-…a1b2", "set_at": time}}; the
--   plaintext is never stored (the hint is what the API shows anyway). Each secret is its own
--   token, so an update that leaves a secret out keeps it without decrypting anything.
-- * user_id has no index of its own: users are deactivated, never deleted, by the app; a
--   user's rows (scope = user_id) are found through profiles_scope_kind_name_key.
-- * profiles_scope_kind_name_key: a name is unique per scope and kind; list_profiles reads it.
-- * profiles_one_active: at most one active profile per scope and kind. An exclusion
--   constraint (btree, =) rather than a partial unique index because it can be DEFERRABLE
--   (INITIALLY IMMEDIATE: checked at the end of each statement): activation switches the old
--   and the new profile in one UPDATE, whose rows PostgreSQL may write in any order.
-- depends: 20261207_06_s2t7k-snapshot-task-link

CREATE TABLE profiles (
    id         uuid PRIMARY KEY,
    user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    scope      uuid NOT NULL GENERATED ALWAYS AS
                   (COALESCE(user_id, '00000000-0000-0000-0000-000000000000'::uuid)) STORED,
    kind       text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,31}$'),
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    settings   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    secrets    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(secrets) = 'object'),
    active     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT profiles_scope_kind_name_key UNIQUE (scope, kind, name),
    CONSTRAINT profiles_one_active EXCLUDE USING btree (scope WITH =, kind WITH =)
        WHERE (active) DEFERRABLE INITIALLY IMMEDIATE
);

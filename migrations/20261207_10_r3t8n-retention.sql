-- Retention (README "Retention"): the indexes its runs walk, and the one rule of overrides.
-- * threads_updated_idx: the expiring threads, oldest activity first, across owners
--   (threads_user_updated_idx starts with user_id: no use for a global range).
-- * conversations_updated_idx: the same for conversations, on updated_at as UTC wall time, an
--   expression the conversation lists (ordered by updated_at itself) cannot use: on the plain
--   column the planner took it for a user's list, walking every user's conversations in order.
-- * mnemo_retention_days: the days (or checkpoints) a policy keeps for one row, from the
--   policy's setting and the overrides in the row's and its user's metadata.
-- depends: 20261207_09_i4d7n-identity

CREATE INDEX threads_updated_idx ON threads (updated_at, thread_id, owner);
CREATE INDEX conversations_updated_idx ON conversations ((updated_at AT TIME ZONE 'UTC'), id);

-- What a retention policy keeps of one row: the setting ($1, > 0), unless the row's metadata
-- (key $3 of its "retention" object) or else its user's (key $5 of theirs) overrides it.
-- An override is a whole number, which only lengthens (the larger of it and the setting:
-- the runs find candidates by the setting's cutoff, on an index), or null, which exempts
-- (NULL: keep all). Anything else in the key is ignored, as if absent.
CREATE FUNCTION mnemo_retention_days(setting integer, row_meta jsonb, row_key text,
                                     user_meta jsonb, user_key text)
    RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(row_meta -> 'retention' -> row_key) = 'null' THEN NULL
        WHEN jsonb_typeof(row_meta -> 'retention' -> row_key) = 'number'
            THEN greatest(setting, least(floor((row_meta -> 'retention' ->> row_key)::numeric),
                                         2147483647)::integer)
        WHEN jsonb_typeof(user_meta -> 'retention' -> user_key) = 'null' THEN NULL
        WHEN jsonb_typeof(user_meta -> 'retention' -> user_key) = 'number'
            THEN greatest(setting, least(floor((user_meta -> 'retention' ->> user_key)::numeric),
                                         2147483647)::integer)
        ELSE setting
    END
$$;

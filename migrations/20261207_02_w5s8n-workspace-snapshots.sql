-- Workspace snapshots (README "Workspace snapshots"): named JSON documents of a user's
-- workspace, its panels and, for each, the query that produced it; saved by hand or
-- automatically, listed newest first, searched by name and query text, restored, deleted.
-- * panels: the document as the client sent it (a JSON array of panel objects; a panel's
--   "query", when a string, is what search reads). Its size is bounded by the app
--   (APP_MAX_SNAPSHOT_BYTES) before it is written.
-- * query_text (generated): the panels' queries, one per line, so that no writer can let it
--   disagree with panels.
-- * conversation_id: the conversation the snapshot belongs with, if any (checked at write:
--   the caller may read it); deleting the conversation keeps the snapshot, unlinked.
-- * pg_trgm (a trusted extension, shipped with the contrib modules of every build we run on:
--   the embedded wheel and Debian's 15) lets search find any substring of a name or query,
--   case-insensitively (`ILIKE`), which is what one types to find "that EV sales panel";
--   btree_gin (20261206_02) lets user_id lead the GIN index, so a search reads one user's
--   entries only.
-- Snapshots are per user, not per conversation, so they are not keyed by conversation_id:
-- distributed by conversation (Citus), they would be a table of their own keyed by user_id,
-- and the foreign key to conversations would have to go (checked by the app at write).
-- depends: 20261207_01_a9f4k-attachments

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- The queries of a panels document, one per line ('' when none): the "query" of each element
-- of the array that is a string. Lax jsonpath, so any document gives an answer, never an error.
CREATE FUNCTION mnemo_snapshot_queries(panels jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(string_agg(q #>> '{}', E'\n'), '')
      FROM jsonb_path_query(panels, '$[*].query ? (@.type() == "string")') AS q
$$;

CREATE TABLE workspace_snapshots (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    panels          jsonb       NOT NULL CHECK (jsonb_typeof(panels) = 'array'),
    query_text      text        NOT NULL
                                GENERATED ALWAYS AS (mnemo_snapshot_queries(panels)) STORED,
    origin          text        NOT NULL CHECK (origin IN ('auto', 'manual')),
    conversation_id uuid        REFERENCES conversations (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- list_snapshots: a user's snapshots newest first, keyset (created_at, id); also the user
-- delete's cascade.
CREATE INDEX workspace_snapshots_user_created_idx
    ON workspace_snapshots (user_id, created_at DESC, id DESC);

-- list_snapshots_matching: substrings of the name or the query text, within one user's.
CREATE INDEX workspace_snapshots_search_idx
    ON workspace_snapshots USING gin (user_id, name gin_trgm_ops, query_text gin_trgm_ops);

-- list_snapshots_of_conversation, and the conversation delete's SET NULL (which would
-- otherwise scan the table once per deleted conversation).
CREATE INDEX workspace_snapshots_conversation_idx
    ON workspace_snapshots (conversation_id, created_at DESC, id DESC)
    WHERE conversation_id IS NOT NULL;

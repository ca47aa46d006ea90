-- Conversations (owned by one user) and their messages, ordered by a gapless per-conversation seq.
-- depends: 20261123_01_u7k2p-create-users-tokens

-- The plain text of a message: its text parts joined by newlines. Used to derive
-- messages.content whenever parts are stored or appended.
CREATE FUNCTION mnemo_parts_text(parts jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(string_agg(e.part ->> 'text', E'\n' ORDER BY e.n), '')
      FROM jsonb_array_elements(parts) WITH ORDINALITY AS e(part, n)
     WHERE e.part ->> 'type' = 'text'
$$;

CREATE TABLE conversations (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title           text        NOT NULL DEFAULT '',
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    tags            text[]      NOT NULL DEFAULT '{}',
    version         integer     NOT NULL DEFAULT 1,
    message_count   integer     NOT NULL DEFAULT 0,
    -- The seq of the newest message ever appended; never decremented, so seqs are never reused.
    last_seq        bigint      NOT NULL DEFAULT 0,
    last_message_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversations_metadata_check CHECK (jsonb_typeof(metadata) = 'object')
);

-- list_conversations / list_conversations_before: newest activity first, keyset on (updated_at, id).
CREATE INDEX conversations_user_updated_idx ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE messages (
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint      NOT NULL,
    id              uuid        NOT NULL,
    role            text        NOT NULL,
    parts           jsonb       NOT NULL,
    content         text        NOT NULL DEFAULT '',
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status          text        NOT NULL DEFAULT 'complete',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_pkey PRIMARY KEY (conversation_id, seq),
    -- A client-supplied id is unique within its conversation (idempotent retries).
    CONSTRAINT messages_conversation_id_id_key UNIQUE (conversation_id, id),
    CONSTRAINT messages_role_check CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    CONSTRAINT messages_status_check CHECK (status IN ('complete', 'streaming')),
    CONSTRAINT messages_parts_check CHECK (jsonb_typeof(parts) = 'array'),
    CONSTRAINT messages_metadata_check CHECK (jsonb_typeof(metadata) = 'object')
);

-- Message size limits, idempotent creates with a content check, and a delete that sees what
-- committed while it waited:
-- * messages.parts_bytes / parts_count: the size of a message's parts as APP_MAX_MESSAGE_BYTES
--   and APP_MAX_MESSAGE_PARTS count it, kept by the statements of queries/messages.sql so that
--   an append adds only the size of what it appends (the check is in the statement, race-free);
--   with metadata_bytes (its metadata's JSON text), page queries sum them to bound a page's
--   bytes without printing anything. Existing rows are measured here.
-- * messages.draft_digest / conversations.draft_digest: a digest of the request that created
--   the row, so that a retry with the same id is told apart from a different request with a
--   reused id (409 idempotency_mismatch) even after the row was edited. NULL for rows stored
--   before this migration (their retry is compared with what they hold now).
-- depends: 20261123_03_k8t2w-create-threads-checkpoints

-- The bytes of a message's parts: the UTF-8 length of each part's JSON text (as PostgreSQL
-- prints jsonb), summed. A sum over parts, so that parts_bytes of parts || more is
-- parts_bytes of parts + mnemo_parts_bytes(more). NULL for NULL (a parameter left out).
CREATE FUNCTION mnemo_parts_bytes(parts jsonb) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(sum(octet_length(e.part::text)), 0)::bigint
      FROM jsonb_array_elements(parts) AS e(part)
$$;

-- What a message weighs in a page (APP_MAX_PAGE_BYTES): its parts, their text (content) and
-- its metadata, in bytes of JSON text, from stored sizes only: octet_length of content reads
-- the stored length without detoasting it, so rows past a page's budget cost no detoasting.
CREATE FUNCTION mnemo_message_bytes(parts_bytes bigint, content text, metadata_bytes integer)
    RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT parts_bytes + octet_length(content) + metadata_bytes
$$;

-- Digests of create requests (their fields as one JSON array, printed by jsonb: keys in one
-- order, no insignificant whitespace): equal requests, equal digests.
CREATE FUNCTION mnemo_message_digest(role text, parts jsonb, metadata jsonb, status text)
    RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT sha256(convert_to(jsonb_build_array(role, parts, metadata, status)::text, 'UTF8'))
$$;

CREATE FUNCTION mnemo_conversation_digest(title text, metadata jsonb, tags text[], thread_id text)
    RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT sha256(convert_to(
        jsonb_build_array(title, metadata, to_jsonb(tags), thread_id)::text, 'UTF8'))
$$;

-- The created_at of the newest message of a conversation other than seq except_seq, NULL if
-- none. VOLATILE on purpose: a volatile function reads with a fresh snapshot, so when
-- delete_message evaluates it again after waiting for the conversation's row lock, it sees the
-- appends and deletes that committed meanwhile (a subquery would read the statement's older
-- snapshot and could move last_message_at backwards).
CREATE FUNCTION mnemo_newest_message_at(conversation_id uuid, except_seq bigint)
    RETURNS timestamptz
    LANGUAGE sql VOLATILE
AS $$
    SELECT m.created_at
      FROM messages AS m
     WHERE m.conversation_id = mnemo_newest_message_at.conversation_id
       AND m.seq <> except_seq
     ORDER BY m.seq DESC
     LIMIT 1
$$;

ALTER TABLE messages
    ADD COLUMN parts_bytes  bigint NOT NULL DEFAULT 0,
    ADD COLUMN parts_count  integer NOT NULL DEFAULT 0,
    ADD COLUMN metadata_bytes integer NOT NULL DEFAULT 0,
    ADD COLUMN draft_digest bytea;
UPDATE messages
   SET parts_bytes = mnemo_parts_bytes(parts),
       parts_count = jsonb_array_length(parts),
       metadata_bytes = octet_length(metadata::text);
ALTER TABLE messages
    ALTER COLUMN parts_bytes DROP DEFAULT,
    ALTER COLUMN parts_count DROP DEFAULT,
    ALTER COLUMN metadata_bytes DROP DEFAULT;

ALTER TABLE conversations ADD COLUMN draft_digest bytea;

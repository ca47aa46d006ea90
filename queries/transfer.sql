-- Export and import of a user's conversations (dal/usecases/transfer.py). An export reads in
-- chunks inside one REPEATABLE READ, read-only transaction, so every chunk sees the same
-- snapshot; each chunk is bounded in rows and in bytes. An import writes in one transaction:
-- the conversations with one statement each (pipelined), their messages with one COPY.

-- name: list_conversations_for_export
-- A chunk of the caller's conversations, most recent activity first, after the keyset
-- ($2, $3) of the last one read (('infinity', the largest uuid) for the first chunk). A
-- chunk ends at $4 - 1 rows or $5 bytes (title, metadata, tags and thread as text, summed in
-- order), whichever comes first, but holds at least one conversation; the first row after
-- the chunk comes back with NULL metadata (only to say that more exist).
-- returns: Conversation
-- uses: conversations_user_updated_idx
-- $1 user_id uuid
-- $2 updated_at timestamptz     keyset: updated_at of the last conversation read
-- $3 id uuid                    keyset: id of the last conversation read
-- $4 chunk_size int8            rows wanted + 1
-- $5 max_bytes int8             bytes of a chunk
SELECT w.id, w.user_id, w.title, CASE WHEN w.in_chunk THEN w.metadata END AS metadata, w.tags,
       w.thread_id, w.version, w.message_count, w.last_message_at, w.created_at, w.updated_at,
       w.kind, w.member_count, w.leaf_seq, w.tool_integrity
  FROM (
        SELECT r.id, r.user_id, r.title, r.metadata, r.tags, r.thread_id, r.version,
               r.message_count, r.last_message_at, r.created_at, r.updated_at, r.kind,
               r.member_count, r.leaf_seq, r.tool_integrity, r.n, r.bytes,
               r.own_bytes, r.n < $4 AND (r.n = 1 OR r.bytes <= $5) AS in_chunk
          FROM (
                SELECT id, user_id, title, metadata, tags, thread_id, version, message_count,
                       last_message_at, created_at, updated_at, kind, member_count, leaf_seq,
                       tool_integrity,
                       row_number() OVER travel AS n,
                       (sum(octet_length(title) + octet_length(metadata::text)
                            + octet_length(tags::text) + coalesce(octet_length(thread_id), 0))
                           OVER travel)::int8 AS bytes,
                       octet_length(title) + octet_length(metadata::text)
                           + octet_length(tags::text) + coalesce(octet_length(thread_id), 0)
                           AS own_bytes
                  FROM conversations
                 WHERE user_id = $1
                   AND (updated_at, id) < ($2, $3)
                WINDOW travel AS (ORDER BY updated_at DESC, id DESC ROWS UNBOUNDED PRECEDING)
                 ORDER BY updated_at DESC, id DESC
                 LIMIT $4
               ) AS r
       ) AS w
 -- the chunk, and the first row after it
 WHERE w.n <= 2 OR w.bytes - w.own_bytes <= $5
 ORDER BY w.updated_at DESC, w.id DESC;

-- name: list_messages_for_export
-- A chunk of the messages of the caller's conversation $2 after seq $3, in seq order. A chunk
-- ends at $4 - 1 rows or $5 bytes (mnemo_message_bytes: parts, content and metadata, from
-- their stored sizes), whichever comes first, but holds at least one message; the first row
-- after the chunk comes back with NULL parts, content and metadata (only to say that more
-- exist). No row: the conversation has no message after $3 (or the caller may not read it).
-- Every branch's messages, in seq order.
-- returns: Message
-- uses: conversation_members_pkey, messages_pkey (forward scan from the keyset)
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 after_seq int8
-- $4 chunk_size int8            rows wanted + 1
-- $5 max_bytes int8             bytes of a chunk
SELECT w.id, w.conversation_id, w.seq, w.role,
       CASE WHEN w.in_chunk THEN w.parts END AS parts,
       CASE WHEN w.in_chunk THEN w.content END AS content,
       CASE WHEN w.in_chunk THEN w.metadata END AS metadata,
       w.status, w.sender_id, w.reply_to, w.parent_seq, w.session_no, w.integrity,
       w.feedback_up, w.feedback_down, w.edited_at, w.retracted_at, w.created_at, w.updated_at
  FROM (
        SELECT r.id, r.conversation_id, r.seq, r.role, r.parts, r.content, r.metadata,
               r.status, r.sender_id, r.reply_to, r.parent_seq, r.session_no, r.integrity,
               r.feedback_up, r.feedback_down, r.edited_at, r.retracted_at, r.created_at,
               r.updated_at, r.n, r.bytes, r.own_bytes,
               r.n < $4 AND (r.n = 1 OR r.bytes <= $5) AS in_chunk
          FROM (
                SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata,
                       m.status, m.sender_id, m.reply_to, m.parent_seq, m.session_no,
                       m.integrity, m.feedback_up, m.feedback_down, m.edited_at,
                       m.retracted_at, m.created_at, m.updated_at,
                       row_number() OVER travel AS n,
                       (sum(mnemo_message_bytes(m.parts_bytes, m.content, m.metadata_bytes))
                           OVER travel)::int8 AS bytes,
                       mnemo_message_bytes(m.parts_bytes, m.content, m.metadata_bytes)
                           AS own_bytes
                  FROM messages AS m
                 WHERE m.conversation_id = $2
                   AND EXISTS (SELECT 1
                                 FROM conversation_members AS mm
                                WHERE mm.conversation_id = $2
                                  AND mm.user_id = $1
                                  AND mnemo_may(mm.role, 'read'))
                   AND m.seq > $3
                WINDOW travel AS (ORDER BY m.seq ROWS UNBOUNDED PRECEDING)
                 ORDER BY m.seq
                 LIMIT $4
               ) AS r
       ) AS w
 -- the chunk, and the first row after it
 WHERE w.n <= 2 OR w.bytes - w.own_bytes <= $5
 ORDER BY w.seq;

-- name: list_existing_conversation_ids
-- Which of the ids $1 a conversation already has (anyone's: conversation ids are global), for
-- an import that keeps its ids.
-- returns: columns id
-- uses: conversations_pkey
-- $1 ids uuid[]
SELECT id
  FROM conversations
 WHERE id = ANY($1::uuid[])
 ORDER BY id;

-- name: insert_imported_conversation
-- One imported conversation, its counters set for the messages the import then copies in
-- (message_count of them, seqs 1 to message_count: what as many appends would leave), its
-- last_message_at the transaction's time, as the messages' created_at. No creation digest
-- (draft_digest NULL): a create retried with this id later compares what the row holds. A
-- taken id violates conversations_pkey; a thread another conversation of the user names,
-- conversations_user_thread_key. The importer becomes its owner member, who has read it all
-- (trigger conversations_owner_member); its messages are one branch (the import copies each
-- with the one before as its parent). Its messages count as the importer's
-- (user_message_counts, README "Limits"), in the stripe of the new conversation, as an
-- append with no per-user limit counts: an import is not refused by APP_MAX_MESSAGES_PER_USER,
-- but what it brings counts against it once committed. (Its stripe's row stays locked until
-- the import commits; stripe 0, which appends under a per-user limit lock, only for 1 import
-- in 32.)
-- returns: nothing
-- uses: conversations_pkey, conversations_user_thread_key, conversation_members_pkey
-- uses: user_message_counts_pkey
-- $1 user_id uuid
-- $2 id uuid
-- $3 title text
-- $4 metadata jsonb
-- $5 tags text[]
-- $6 thread_id text
-- $7 version int4
-- $8 message_count int4
WITH conv AS (
    INSERT INTO conversations (id, user_id, title, metadata, tags, thread_id, version,
                               message_count, last_seq, leaf_seq, last_message_at)
    VALUES ($2, $1, $3, $4, $5, $6, $7, $8::int4, $8::int4, nullif($8::int4, 0),
            CASE WHEN $8::int4 > 0 THEN now() END)
    RETURNING id, user_id, message_count
)
INSERT INTO user_message_counts AS u (user_id, stripe, message_count)
SELECT cv.user_id, get_byte(uuid_send(cv.id), 15) % 32, cv.message_count
  FROM conv AS cv
 WHERE cv.message_count > 0
    ON CONFLICT (user_id, stripe) DO UPDATE
   SET message_count = u.message_count + excluded.message_count;

-- name: update_import_timeout
-- The statement_timeout of the rest of this transaction (an import's COPY may run longer than
-- DB_QUERY_TIMEOUT allows an ordinary statement: APP_IMPORT_TIMEOUT), in milliseconds.
-- returns: value
-- $1 milliseconds text
SELECT set_config('statement_timeout', $1, true);

-- Messages of a conversation, ordered by a gapless per-conversation seq. Every query is
-- scoped by the caller ($1 user_id) through the conversation.

-- name: insert_message
-- Append a message in one statement. The UPDATE of the conversation takes its row lock, so
-- concurrent appends to one conversation queue on it and each gets last_seq + 1: no gaps,
-- no duplicates. If a message with this id is already in the conversation (a retry), nothing
-- changes and that message comes back with created = false. A concurrent retry of the same
-- id loses the race on messages_conversation_id_id_key (Conflict) and the gateway re-reads.
-- An empty result means the conversation is missing or not the caller's.
-- uses: conversations_pkey, messages_conversation_id_id_key
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 id uuid
-- $4 role text
-- $5 parts jsonb
-- $6 metadata jsonb
-- $7 status text
WITH existing AS (
    SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
           m.created_at, m.updated_at
      FROM messages AS m
      JOIN conversations AS c ON c.id = m.conversation_id
     WHERE c.user_id = $1
       AND m.conversation_id = $2
       AND m.id = $3
), conv AS (
    UPDATE conversations AS c
       SET last_seq = c.last_seq + 1,
           message_count = c.message_count + 1,
           last_message_at = now(),
           updated_at = now()
     WHERE c.id = $2
       AND c.user_id = $1
       AND NOT EXISTS (SELECT 1 FROM existing)
    RETURNING c.id, c.last_seq
), inserted AS (
    INSERT INTO messages (conversation_id, seq, id, role, parts, content, metadata, status)
    SELECT conv.id, conv.last_seq, $3, $4, $5::jsonb, mnemo_parts_text($5::jsonb), $6, $7
      FROM conv
    RETURNING id, conversation_id, seq, role, parts, content, metadata, status, created_at,
              updated_at
)
SELECT id, conversation_id, seq, role, parts, content, metadata, status, created_at,
       updated_at, true AS created
  FROM inserted
 UNION ALL
SELECT id, conversation_id, seq, role, parts, content, metadata, status, created_at,
       updated_at, false AS created
  FROM existing;

-- name: get_message
-- One message of the caller's conversation by its id.
-- uses: messages_conversation_id_id_key
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 id uuid
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.created_at, m.updated_at
  FROM messages AS m
  JOIN conversations AS c ON c.id = m.conversation_id
 WHERE c.user_id = $1
   AND m.conversation_id = $2
   AND m.id = $3;

-- name: list_messages_latest
-- The newest messages of the caller's conversation, returned oldest first. One row with NULL
-- message columns means the conversation exists but has no messages; no row at all means it
-- is missing or not the caller's (one round trip tells both apart). Page size + 1 tells the
-- gateway whether more exist.
-- uses: messages_pkey (backward scan)
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 page_size int8
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.created_at, m.updated_at
  FROM conversations AS c
  LEFT JOIN LATERAL (
        SELECT id, conversation_id, seq, role, parts, content, metadata, status, created_at,
               updated_at
          FROM messages
         WHERE conversation_id = c.id
         ORDER BY seq DESC
         LIMIT $3
       ) AS m ON true
 WHERE c.id = $2
   AND c.user_id = $1
 ORDER BY m.seq;

-- name: list_messages_before
-- The page of messages just before seq $3 (older), returned oldest first; same conventions
-- as list_messages_latest.
-- uses: messages_pkey (backward scan from the cursor)
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 before_seq int8
-- $4 page_size int8
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.created_at, m.updated_at
  FROM conversations AS c
  LEFT JOIN LATERAL (
        SELECT id, conversation_id, seq, role, parts, content, metadata, status, created_at,
               updated_at
          FROM messages
         WHERE conversation_id = c.id
           AND seq < $3
         ORDER BY seq DESC
         LIMIT $4
       ) AS m ON true
 WHERE c.id = $2
   AND c.user_id = $1
 ORDER BY m.seq;

-- name: list_messages_after
-- The page of messages just after seq $3 (newer), oldest first; same conventions as
-- list_messages_latest.
-- uses: messages_pkey (forward scan from the cursor)
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 after_seq int8
-- $4 page_size int8
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.created_at, m.updated_at
  FROM conversations AS c
  LEFT JOIN LATERAL (
        SELECT id, conversation_id, seq, role, parts, content, metadata, status, created_at,
               updated_at
          FROM messages
         WHERE conversation_id = c.id
           AND seq > $3
         ORDER BY seq
         LIMIT $4
       ) AS m ON true
 WHERE c.id = $2
   AND c.user_id = $1
 ORDER BY m.seq;

-- name: update_message
-- Edit a message in one statement: replace its parts ($4), append parts while it is
-- streaming ($5), replace its metadata ($6), change its status ($7); NULL leaves each as
-- it is, and content is derived again from the resulting parts. Appending to a complete
-- message, or turning a complete message back to streaming, matches no row: the gateway
-- then tells NotFound from Conflict.
-- uses: messages_conversation_id_id_key
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 id uuid
-- $4 parts jsonb                NULL keeps them
-- $5 append_parts jsonb         NULL appends nothing
-- $6 metadata jsonb             NULL keeps it
-- $7 status text                NULL keeps it
UPDATE messages AS m
   SET parts = coalesce($4::jsonb, m.parts) || coalesce($5::jsonb, '[]'::jsonb),
       content = mnemo_parts_text(coalesce($4::jsonb, m.parts) || coalesce($5::jsonb, '[]'::jsonb)),
       metadata = coalesce($6::jsonb, m.metadata),
       status = coalesce($7::text, m.status),
       updated_at = now()
  FROM conversations AS c
 WHERE c.id = m.conversation_id
   AND c.user_id = $1
   AND m.conversation_id = $2
   AND m.id = $3
   AND ($5::jsonb IS NULL OR m.status = 'streaming')
   AND ($7::text IS NULL OR $7::text = m.status OR m.status = 'streaming')
RETURNING m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
          m.created_at, m.updated_at;

-- name: delete_message
-- Delete one message and keep the conversation's counters right, in one statement. Seqs are
-- not reused (last_seq stays); last_message_at becomes that of the newest remaining message.
-- uses: messages_conversation_id_id_key, messages_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 id uuid
WITH deleted AS (
    DELETE FROM messages AS m
     USING conversations AS c
     WHERE c.id = m.conversation_id
       AND c.user_id = $1
       AND m.conversation_id = $2
       AND m.id = $3
    RETURNING m.conversation_id, m.seq, m.id
)
UPDATE conversations AS c
   SET message_count = c.message_count - 1,
       last_message_at = (
           SELECT r.created_at
             FROM messages AS r
            WHERE r.conversation_id = d.conversation_id
              AND r.seq <> d.seq
            ORDER BY r.seq DESC
            LIMIT 1
       ),
       updated_at = now()
  FROM deleted AS d
 WHERE c.id = d.conversation_id
RETURNING d.id;

-- Messages of a conversation, ordered by a gapless per-conversation seq. Every query is
-- scoped by the caller ($1 user_id) through the conversation.

-- name: insert_message
-- Append a message in one statement. The conversation's row is locked first (FOR UPDATE reads
-- its newest version, whatever committed since the statement began), so concurrent appends
-- to one conversation queue on it and each gets last_seq + 1: no gaps, no duplicates.
-- A message with this id already in the conversation (a retry) changes nothing and comes back
-- with created = false if this request is the one that created it (same role, parts,
-- metadata and status; compared by digest, so edits since do not matter), created = NULL if
-- it is another request reusing the id. A concurrent retry that stored the id while this one
-- waited for the lock is not visible to this statement's snapshot: ON CONFLICT DO NOTHING
-- leaves everything as it was (no error, so a caller's transaction stays usable) and the
-- result is empty; the gateway then runs the statement once more, which sees it.
-- Parts over $8 bytes or $9 parts (mnemo_parts_bytes), or metadata over $8 bytes (its JSON
-- text: jsonb prints 1e300 as 301 digits, so a small body can print large) store nothing
-- and return one row with
-- NULL message columns (the digest, computed only for a row with this id or one inserted, is
-- spared). No row at all: the conversation is missing or not the caller's.
-- returns: Message + created
-- uses: conversations_pkey, messages_conversation_id_id_key
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 id uuid
-- $4 role text
-- $5 parts jsonb
-- $6 metadata jsonb
-- $7 status text
-- $8 max_bytes int8             APP_MAX_MESSAGE_BYTES
-- $9 max_parts int4             APP_MAX_MESSAGE_PARTS
WITH draft AS (
    SELECT mnemo_parts_bytes($5::jsonb) AS parts_bytes,
           jsonb_array_length($5::jsonb) AS parts_count,
           octet_length($6::jsonb::text) AS metadata_bytes
), existing AS (
    SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
           m.created_at, m.updated_at,
           coalesce(m.draft_digest = mnemo_message_digest($4, $5::jsonb, $6::jsonb, $7),
                    -- stored before digests were kept: compared with what it holds now
                    m.draft_digest IS NULL
                    AND (m.role, m.parts, m.metadata, m.status) = ($4, $5::jsonb, $6::jsonb, $7))
               AS same
      FROM messages AS m
      JOIN conversations AS c ON c.id = m.conversation_id
     WHERE c.user_id = $1
       AND m.conversation_id = $2
       AND m.id = $3
), locked AS (
    SELECT c.id, c.last_seq
      FROM conversations AS c, draft AS d
     WHERE c.id = $2
       AND c.user_id = $1
       AND NOT EXISTS (SELECT 1 FROM existing)
       AND d.parts_bytes <= $8
       AND d.parts_count <= $9
       AND d.metadata_bytes <= $8
       FOR UPDATE OF c
), inserted AS (
    INSERT INTO messages (conversation_id, seq, id, role, parts, content, metadata, status,
                          parts_bytes, parts_count, metadata_bytes, draft_digest)
    SELECT l.id, l.last_seq + 1, $3, $4, $5::jsonb, mnemo_parts_text($5::jsonb), $6, $7,
           d.parts_bytes, d.parts_count, d.metadata_bytes,
           mnemo_message_digest($4, $5::jsonb, $6::jsonb, $7)
      FROM locked AS l, draft AS d
        ON CONFLICT (conversation_id, id) DO NOTHING
    RETURNING id, conversation_id, seq, role, parts, content, metadata, status, created_at,
              updated_at
), conv AS (
    UPDATE conversations AS c
       SET last_seq = i.seq,
           message_count = c.message_count + 1,
           last_message_at = i.created_at,
           updated_at = now()
      FROM inserted AS i
     WHERE c.id = i.conversation_id
)
SELECT id, conversation_id, seq, role, parts, content, metadata, status, created_at,
       updated_at, true AS created
  FROM inserted
 UNION ALL
SELECT id, conversation_id, seq, role, parts, content, metadata, status, created_at,
       updated_at, CASE WHEN same THEN false END AS created
  FROM existing
 UNION ALL
SELECT NULL, $2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM draft AS d
 WHERE NOT (d.parts_bytes <= $8 AND d.parts_count <= $9 AND d.metadata_bytes <= $8)
   AND NOT EXISTS (SELECT 1 FROM existing);

-- name: get_message
-- One message of the caller's conversation by its id.
-- returns: Message
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
-- is missing or not the caller's (one round trip tells both apart).
-- A page ends at $3 - 1 rows or $4 bytes (mnemo_message_bytes, summed in the order of
-- travel), whichever comes first, but holds at least one message; the first row after the
-- page comes back with NULL parts, content and metadata (only to say that more exist).
-- returns: Message
-- uses: messages_pkey (backward scan)
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 page_size int8             rows wanted + 1
-- $4 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.created_at, m.updated_at
  FROM conversations AS c
  LEFT JOIN LATERAL (
        SELECT w.id, w.conversation_id, w.seq, w.role,
               CASE WHEN w.in_page THEN w.parts END AS parts,
               CASE WHEN w.in_page THEN w.content END AS content,
               CASE WHEN w.in_page THEN w.metadata END AS metadata,
               w.status, w.created_at, w.updated_at
          FROM (
                SELECT r.id, r.conversation_id, r.seq, r.role, r.parts, r.content, r.metadata,
                       r.status, r.created_at, r.updated_at, r.n, r.bytes, r.own_bytes,
                       r.n < $3 AND (r.n = 1 OR r.bytes <= $4) AS in_page
                  FROM (
                        SELECT id, conversation_id, seq, role, parts, content, metadata, status,
                               created_at, updated_at,
                               row_number() OVER travel AS n,
                               (sum(mnemo_message_bytes(parts_bytes, content, metadata_bytes))
                                   OVER travel)::int8 AS bytes,
                               mnemo_message_bytes(parts_bytes, content, metadata_bytes) AS own_bytes
                          FROM messages
                         WHERE conversation_id = c.id
                        WINDOW travel AS (ORDER BY seq DESC ROWS UNBOUNDED PRECEDING)
                         ORDER BY seq DESC
                         LIMIT $3
                       ) AS r
               ) AS w
         -- the page, and the first row after it (the one before it is in the page)
         WHERE w.n <= 2 OR w.bytes - w.own_bytes <= $4
       ) AS m ON true
 WHERE c.id = $2
   AND c.user_id = $1
 ORDER BY m.seq;

-- name: list_messages_before
-- The page of messages just before seq $3 (older), returned oldest first; same conventions
-- as list_messages_latest.
-- returns: Message
-- uses: messages_pkey (backward scan from the cursor)
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 before_seq int8
-- $4 page_size int8             rows wanted + 1
-- $5 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.created_at, m.updated_at
  FROM conversations AS c
  LEFT JOIN LATERAL (
        SELECT w.id, w.conversation_id, w.seq, w.role,
               CASE WHEN w.in_page THEN w.parts END AS parts,
               CASE WHEN w.in_page THEN w.content END AS content,
               CASE WHEN w.in_page THEN w.metadata END AS metadata,
               w.status, w.created_at, w.updated_at
          FROM (
                SELECT r.id, r.conversation_id, r.seq, r.role, r.parts, r.content, r.metadata,
                       r.status, r.created_at, r.updated_at, r.n, r.bytes, r.own_bytes,
                       r.n < $4 AND (r.n = 1 OR r.bytes <= $5) AS in_page
                  FROM (
                        SELECT id, conversation_id, seq, role, parts, content, metadata, status,
                               created_at, updated_at,
                               row_number() OVER travel AS n,
                               (sum(mnemo_message_bytes(parts_bytes, content, metadata_bytes))
                                   OVER travel)::int8 AS bytes,
                               mnemo_message_bytes(parts_bytes, content, metadata_bytes) AS own_bytes
                          FROM messages
                         WHERE conversation_id = c.id
                           AND seq < $3
                        WINDOW travel AS (ORDER BY seq DESC ROWS UNBOUNDED PRECEDING)
                         ORDER BY seq DESC
                         LIMIT $4
                       ) AS r
               ) AS w
         -- the page, and the first row after it (the one before it is in the page)
         WHERE w.n <= 2 OR w.bytes - w.own_bytes <= $5
       ) AS m ON true
 WHERE c.id = $2
   AND c.user_id = $1
 ORDER BY m.seq;

-- name: list_messages_after
-- The page of messages just after seq $3 (newer), oldest first; same conventions as
-- list_messages_latest.
-- returns: Message
-- uses: messages_pkey (forward scan from the cursor)
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 after_seq int8
-- $4 page_size int8             rows wanted + 1
-- $5 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.created_at, m.updated_at
  FROM conversations AS c
  LEFT JOIN LATERAL (
        SELECT w.id, w.conversation_id, w.seq, w.role,
               CASE WHEN w.in_page THEN w.parts END AS parts,
               CASE WHEN w.in_page THEN w.content END AS content,
               CASE WHEN w.in_page THEN w.metadata END AS metadata,
               w.status, w.created_at, w.updated_at
          FROM (
                SELECT r.id, r.conversation_id, r.seq, r.role, r.parts, r.content, r.metadata,
                       r.status, r.created_at, r.updated_at, r.n, r.bytes, r.own_bytes,
                       r.n < $4 AND (r.n = 1 OR r.bytes <= $5) AS in_page
                  FROM (
                        SELECT id, conversation_id, seq, role, parts, content, metadata, status,
                               created_at, updated_at,
                               row_number() OVER travel AS n,
                               (sum(mnemo_message_bytes(parts_bytes, content, metadata_bytes))
                                   OVER travel)::int8 AS bytes,
                               mnemo_message_bytes(parts_bytes, content, metadata_bytes) AS own_bytes
                          FROM messages
                         WHERE conversation_id = c.id
                           AND seq > $3
                        WINDOW travel AS (ORDER BY seq ROWS UNBOUNDED PRECEDING)
                         ORDER BY seq
                         LIMIT $4
                       ) AS r
               ) AS w
         -- the page, and the first row after it (the one before it is in the page)
         WHERE w.n <= 2 OR w.bytes - w.own_bytes <= $5
       ) AS m ON true
 WHERE c.id = $2
   AND c.user_id = $1
 ORDER BY m.seq;

-- name: update_message
-- Edit a message in one statement: replace its parts ($4), append parts while it is
-- streaming ($5), replace its metadata ($6), change its status ($7); NULL leaves each as
-- it is, and content is derived again from the resulting parts. Appending to a complete
-- message, turning a complete message back to streaming, parts that would exceed $8 bytes
-- or $9 parts, or metadata over $8 bytes match no row: the gateway then tells NotFound,
-- Conflict and TooLarge apart.
-- The size check reads the row it updates (parts_bytes + what is appended), so concurrent
-- appends cannot together pass the limit; an edit that leaves the parts alone is not checked.
-- returns: Message
-- uses: messages_conversation_id_id_key
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 id uuid
-- $4 parts jsonb                NULL keeps them
-- $5 append_parts jsonb         NULL appends nothing
-- $6 metadata jsonb             NULL keeps it
-- $7 status text                NULL keeps it
-- $8 max_bytes int8             APP_MAX_MESSAGE_BYTES
-- $9 max_parts int4             APP_MAX_MESSAGE_PARTS
WITH patch AS (
    SELECT mnemo_parts_bytes($4::jsonb) AS parts_bytes,
           jsonb_array_length($4::jsonb) AS parts_count,
           coalesce(mnemo_parts_bytes($5::jsonb), 0) AS append_bytes,
           coalesce(jsonb_array_length($5::jsonb), 0) AS append_count,
           octet_length($6::jsonb::text) AS metadata_bytes
)
UPDATE messages AS m
   SET parts = coalesce($4::jsonb, m.parts) || coalesce($5::jsonb, '[]'::jsonb),
       content = mnemo_parts_text(coalesce($4::jsonb, m.parts) || coalesce($5::jsonb, '[]'::jsonb)),
       parts_bytes = coalesce(p.parts_bytes, m.parts_bytes) + p.append_bytes,
       parts_count = coalesce(p.parts_count, m.parts_count) + p.append_count,
       metadata = coalesce($6::jsonb, m.metadata),
       metadata_bytes = coalesce(p.metadata_bytes, m.metadata_bytes),
       status = coalesce($7::text, m.status),
       updated_at = now()
  FROM conversations AS c, patch AS p
 WHERE c.id = m.conversation_id
   AND c.user_id = $1
   AND m.conversation_id = $2
   AND m.id = $3
   AND ($5::jsonb IS NULL OR m.status = 'streaming')
   AND ($7::text IS NULL OR $7::text = m.status OR m.status = 'streaming')
   AND (($4::jsonb IS NULL AND $5::jsonb IS NULL)
        OR (coalesce(p.parts_bytes, m.parts_bytes) + p.append_bytes <= $8
            AND coalesce(p.parts_count, m.parts_count) + p.append_count <= $9))
   AND ($6::jsonb IS NULL OR p.metadata_bytes <= $8)
RETURNING m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
          m.created_at, m.updated_at;

-- name: delete_message
-- Delete one message and keep the conversation's counters right, in one statement. Seqs are
-- not reused (last_seq stays); last_message_at becomes that of the newest remaining message.
-- It is read by mnemo_newest_message_at, a VOLATILE function, hence with a fresh snapshot
-- when the UPDATE evaluates it again after waiting for the conversation's row lock: appends
-- and deletes that committed meanwhile count (a subquery would read the statement's snapshot
-- and could move last_message_at backwards).
-- returns: value
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
       last_message_at = mnemo_newest_message_at(d.conversation_id, d.seq),
       updated_at = now()
  FROM deleted AS d
 WHERE c.id = d.conversation_id
RETURNING d.id;

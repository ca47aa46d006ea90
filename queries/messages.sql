-- Messages of a conversation, ordered by a gapless per-conversation seq. Every query is
-- scoped by the caller ($1 user_id): a conversation is visible to its members
-- (conversation_members), and what a member may do is what conversation_rights grants the
-- member's role (mnemo_may). A non-member finds nothing; a member without the right is told so.

-- name: insert_message
-- Append a message in one statement. The conversation's row is locked first (FOR UPDATE reads
-- its newest version, whatever committed since the statement began), so concurrent appends
-- to one conversation queue on it and each gets last_seq + 1: no gaps, no duplicates.
-- The caller must be a member whose role may 'append'; the message's sender is the caller.
-- It follows the conversation's active leaf (parent_seq = leaf_seq) and becomes the leaf,
-- on the active branch. The sender's read position stays where it is: one's own messages are
-- never unread (the unread queries skip them), and reading is marked by reads.sql alone (one
-- row update less per append).
-- Chat session (README "Chat sessions"): the message joins the conversation's current session,
-- or starts the next (session_no + 1) when there is none, it was ended, or its last activity
-- is more than $11 seconds before now() (exactly $11 seconds still joins). A new session's
-- chat_sessions row is written here, and the previous one's final figures; the current
-- session's last activity and last seq are the conversation's own.
-- Limits (README "Limits"): with $12 > 0, a conversation holding $12 messages takes no more;
-- with $13 > 0, a sender who wrote $13 messages (user_message_counts, all conversations)
-- writes no more. The conversation's row, then the sender's count (its stripe 0), are locked
-- before they are compared, so concurrent appends never pass a limit; the count grows with
-- every message stored, whatever the limit (without one, in the conversation's stripe, so a
-- user's appends to different conversations do not queue on one row).
-- Tool-call integrity (README "Tool-call integrity"), unless the conversation's
-- tool_integrity is 'off', for a complete message: the tool calls of the message it follows
-- (tool-* and dynamic-tool parts of a non-tool message; answered where they stand in an
-- output-* state) are recorded in message_tool_calls; a 'tool' message whose part names a
-- toolCallId no recorded call has is 'unknown_tool_result'; any other message appended while
-- a recorded call has neither a result nor an earlier such message is 'unanswered_tool_call'
-- (and closes those calls). 'flag' stores the message with integrity set, 'reject' stores
-- nothing and names the call (tool_call_id).
-- A message with this id already in the conversation (a retry) changes nothing and comes back
-- with created = false if this request is the one that created it (same role, parts,
-- metadata and status; compared by digest, so edits since do not matter), created = NULL if
-- it is another request reusing the id; no limit refuses it. A concurrent retry that stored
-- the id while this one waited for the lock is not visible to this statement's snapshot: ON
-- CONFLICT DO NOTHING leaves everything as it was (no error, so a caller's transaction stays
-- usable) and the result is empty; the gateway then runs the statement once more, which sees
-- it.
-- Nothing is stored, and one row with NULL message columns says why (problem), when: the
-- member's role may not append ('forbidden'); parts over $8 bytes or $9 parts
-- (mnemo_parts_bytes), or metadata over $8 bytes (its JSON text: jsonb prints 1e300 as 301
-- digits, so a small body can print large) ('too_large'); $10 names no message of the
-- conversation ('reply_to'); a limit is reached ('conversation_limit', 'user_limit'); the
-- conversation rejects unpaired tool calls ('tool_call_unpaired', tool_call_id says which).
-- No row at all: the conversation is missing or the caller is not a member.
-- user_id is the conversation's owner (read from the locked row): written here, the trigger
-- that fills it for other inserts is not called.
-- Attachments (README "Attachments"): $14 are the files its `file` parts reference (distinct);
-- each must be one the caller may read (its uploader, or a member who may read a conversation
-- referencing it), else nothing is stored ('attachment', attachment_id says which). The
-- references are written with the message (message_attachments, in id order); their foreign
-- key locks each file against a concurrent collection.
-- returns: Message + created, problem, tool_call_id, attachment_id
-- uses: conversation_members_pkey, conversations_pkey, messages_conversation_id_id_key
-- uses: user_message_counts_pkey, chat_sessions_pkey, message_tool_calls_pkey
-- uses: message_tool_calls_open_idx, messages_pkey, attachments_pkey
-- uses: message_attachments_attachment_idx, message_attachments_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 id uuid
-- $4 role text
-- $5 parts jsonb
-- $6 metadata jsonb
-- $7 status text
-- $8 max_bytes int8             APP_MAX_MESSAGE_BYTES
-- $9 max_parts int4             APP_MAX_MESSAGE_PARTS
-- $10 reply_to uuid             the message this one replies to, or NULL
-- $11 session_timeout float8    APP_SESSION_TIMEOUT_SECONDS
-- $12 max_conversation int8     APP_MAX_MESSAGES_PER_CONVERSATION (0: no limit)
-- $13 max_user int8             APP_MAX_MESSAGES_PER_USER (0: no limit)
-- $14 attachments uuid[]        the files its parts reference ('{}': none)
WITH draft AS (
    SELECT mnemo_parts_bytes($5::jsonb) AS parts_bytes,
           jsonb_array_length($5::jsonb) AS parts_count,
           octet_length($6::jsonb::text) AS metadata_bytes
), member AS (
    SELECT mnemo_may(mm.role, 'append') AS allowed
      FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), existing AS (
    SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
           m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity, m.feedback_up,
           m.feedback_down, m.edited_at, m.retracted_at, m.created_at, m.updated_at,
           coalesce(m.draft_digest = mnemo_message_digest($4, $5::jsonb, $6::jsonb, $7),
                    -- stored before digests were kept: compared with what it holds now
                    m.draft_digest IS NULL
                    AND (m.role, m.parts, m.metadata, m.status) = ($4, $5::jsonb, $6::jsonb, $7))
               AS same
      FROM messages AS m
     WHERE EXISTS (SELECT 1 FROM member)
       AND m.conversation_id = $2
       AND m.id = $3
), checked AS (
    SELECT mb.allowed,
           d.parts_bytes <= $8 AND d.parts_count <= $9 AND d.metadata_bytes <= $8 AS fits,
           $10::uuid IS NULL
           OR EXISTS (SELECT 1 FROM messages AS r WHERE r.conversation_id = $2 AND r.id = $10)
               AS replies,
           (SELECT x.id
              FROM unnest($14::uuid[]) AS x(id)
             WHERE NOT EXISTS (SELECT 1
                                 FROM mnemo_readable_attachments($1, $14::uuid[]) AS a
                                WHERE a.id = x.id)
             ORDER BY x.id
             LIMIT 1) AS unreadable
      FROM member AS mb, draft AS d
     WHERE NOT EXISTS (SELECT 1 FROM existing)
), locked AS (
    SELECT c.id, c.last_seq, c.leaf_seq, c.user_id, c.message_count, c.tool_integrity,
           CASE WHEN c.session_no = 0 OR c.session_ended OR c.session_active_at IS NULL
                     OR c.session_active_at < now() - make_interval(secs => $11::float8)
                THEN c.session_no + 1
                ELSE c.session_no END AS session_no,
           c.session_no AS prior_session_no, c.session_active_at AS prior_active_at,
           c.tool_integrity <> 'off' AND $7 = 'complete' AS checks
      FROM conversations AS c, checked AS k
     WHERE c.id = $2
       AND k.allowed
       AND k.fits
       AND k.replies
       AND k.unreadable IS NULL
       FOR UPDATE OF c
), sender AS (
    -- With a per-user limit only: the sender's stripe 0, locked after the conversation (every
    -- append takes them in this order) and counted into below, plus the other stripes, which
    -- no append changes while the limit is set (migration 20261206_09).
    SELECT u.message_count
           + (SELECT coalesce(sum(o.message_count), 0)
                FROM user_message_counts AS o
               WHERE o.user_id = $1
                 AND o.stripe > 0) AS message_count
      FROM user_message_counts AS u
     WHERE u.user_id = $1
       AND u.stripe = 0
       AND $13::int8 > 0
       AND EXISTS (SELECT 1 FROM locked)
       FOR UPDATE OF u
), leaf_calls AS (
    -- The tool calls of the message this one follows, as it is now.
    SELECT p.part ->> 'toolCallId' AS tool_call_id,
           coalesce(p.part ->> 'state' LIKE 'output-%', false) AS answered
      FROM locked AS l
      JOIN messages AS lm ON lm.conversation_id = l.id AND lm.seq = l.leaf_seq
     CROSS JOIN LATERAL jsonb_array_elements(lm.parts) AS p(part)
     WHERE l.tool_integrity <> 'off'
       AND lm.role <> 'tool'
       AND (p.part ->> 'type' LIKE 'tool-%' OR p.part ->> 'type' = 'dynamic-tool')
       AND jsonb_typeof(p.part -> 'toolCallId') = 'string'
), results AS (
    -- The calls a 'tool' message answers.
    SELECT DISTINCT p.part ->> 'toolCallId' AS tool_call_id
      FROM locked AS l
     CROSS JOIN LATERAL jsonb_array_elements($5::jsonb) AS p(part)
     WHERE l.tool_integrity <> 'off'
       AND $4 = 'tool'
       AND jsonb_typeof(p.part -> 'toolCallId') = 'string'
), verdict AS (
    SELECT l.id, l.last_seq, l.leaf_seq, l.user_id, l.session_no,
           CASE WHEN $12::int8 > 0 AND l.message_count >= $12::int8 THEN 'conversation_limit'
                WHEN $13::int8 > 0 AND coalesce(s.message_count, 0) >= $13::int8
                THEN 'user_limit' END AS over,
           l.tool_integrity,
           CASE WHEN NOT l.checks THEN NULL
                WHEN $4 = 'tool' THEN
                    (SELECT r.tool_call_id
                       FROM results AS r
                      WHERE NOT EXISTS (SELECT 1
                                          FROM message_tool_calls AS t
                                         WHERE t.conversation_id = $2
                                           AND t.tool_call_id = r.tool_call_id)
                        AND NOT EXISTS (SELECT 1
                                          FROM leaf_calls AS lc
                                         WHERE lc.tool_call_id = r.tool_call_id)
                      ORDER BY r.tool_call_id
                      LIMIT 1)
                ELSE coalesce(
                    (SELECT t.tool_call_id
                       FROM message_tool_calls AS t
                      WHERE t.conversation_id = $2
                        AND t.result_seq IS NULL
                        AND t.unanswered_seq IS NULL
                      ORDER BY t.call_seq, t.tool_call_id
                      LIMIT 1),
                    (SELECT lc.tool_call_id
                       FROM leaf_calls AS lc
                      WHERE NOT lc.answered
                        AND NOT EXISTS (SELECT 1
                                          FROM message_tool_calls AS t
                                         WHERE t.conversation_id = $2
                                           AND t.tool_call_id = lc.tool_call_id)
                      ORDER BY lc.tool_call_id
                      LIMIT 1)) END AS unpaired
      FROM locked AS l
      LEFT JOIN sender AS s ON true
), inserted AS (
    INSERT INTO messages (conversation_id, seq, id, role, parts, content, metadata, status,
                          parts_bytes, parts_count, metadata_bytes, draft_digest, user_id,
                          sender_id, reply_to, parent_seq, session_no, integrity)
    SELECT v.id, v.last_seq + 1, $3, $4, $5::jsonb, mnemo_parts_text($5::jsonb), $6, $7,
           d.parts_bytes, d.parts_count, d.metadata_bytes,
           mnemo_message_digest($4, $5::jsonb, $6::jsonb, $7), v.user_id, $1, $10, v.leaf_seq,
           v.session_no,
           CASE WHEN v.unpaired IS NULL THEN NULL
                WHEN $4 = 'tool' THEN 'unknown_tool_result'
                ELSE 'unanswered_tool_call' END
      FROM verdict AS v, draft AS d
     WHERE v.over IS NULL
       AND (v.unpaired IS NULL OR v.tool_integrity <> 'reject')
        ON CONFLICT (conversation_id, id) DO NOTHING
    RETURNING id, conversation_id, seq, role, parts, content, metadata, status, sender_id,
              reply_to, parent_seq, session_no, integrity, feedback_up, feedback_down,
              edited_at, retracted_at, created_at, updated_at
), conv AS (
    UPDATE conversations AS c
       SET last_seq = i.seq,
           leaf_seq = i.seq,
           message_count = c.message_count + 1,
           last_message_at = i.created_at,
           session_no = i.session_no,
           session_active_at = i.created_at,
           session_ended = false,
           updated_at = now()
      FROM inserted AS i
     WHERE c.id = i.conversation_id
), counted AS (
    -- Stripe 0 under a per-user limit (locked above), else the conversation's stripe.
    INSERT INTO user_message_counts AS u (user_id, stripe, message_count)
    SELECT $1, CASE WHEN $13::int8 > 0 THEN 0 ELSE get_byte(uuid_send($2), 15) % 32 END, 1
      FROM inserted
        ON CONFLICT (user_id, stripe) DO UPDATE
       SET message_count = u.message_count + 1
), session AS (
    -- Only when a session starts: its row, and the previous one's final figures (an upsert
    -- reaches that row even if it was committed after this statement's snapshot). While a
    -- session goes on, its last activity and last seq are the conversation's
    -- (session_active_at, last_seq): nothing more is written per message.
    INSERT INTO chat_sessions AS s (conversation_id, session_no, started_at, last_activity_at,
                                    first_seq, last_seq, message_count)
    SELECT i.conversation_id, i.session_no, i.created_at, i.created_at, i.seq, i.seq, 1
      FROM inserted AS i, locked AS l
     WHERE i.session_no <> l.prior_session_no
        ON CONFLICT (conversation_id, session_no) DO NOTHING
), closing AS (
    INSERT INTO chat_sessions AS s (conversation_id, session_no, last_activity_at, last_seq)
    SELECT l.id, l.prior_session_no, l.prior_active_at, l.last_seq
      FROM inserted AS i, locked AS l
     WHERE i.session_no <> l.prior_session_no
       AND l.prior_session_no > 0
        ON CONFLICT (conversation_id, session_no) DO UPDATE
       SET last_activity_at = excluded.last_activity_at,
           last_seq = excluded.last_seq,
           message_count = excluded.last_seq - s.first_seq + 1
), calls AS (
    INSERT INTO message_tool_calls (conversation_id, tool_call_id, call_seq, result_seq,
                                    unanswered_seq)
    SELECT i.conversation_id, lc.tool_call_id, i.parent_seq,
           CASE WHEN lc.answered THEN i.parent_seq
                WHEN lc.tool_call_id IN (SELECT r.tool_call_id FROM results AS r) THEN i.seq
           END,
           CASE WHEN NOT lc.answered AND i.role <> 'tool' AND i.status = 'complete'
                THEN i.seq END
      FROM inserted AS i, leaf_calls AS lc
        ON CONFLICT (conversation_id, tool_call_id) DO NOTHING
), answered AS (
    UPDATE message_tool_calls AS t
       SET result_seq = i.seq
      FROM inserted AS i, results AS r
     WHERE t.conversation_id = i.conversation_id
       AND t.tool_call_id = r.tool_call_id
       AND t.result_seq IS NULL
), closed AS (
    UPDATE message_tool_calls AS t
       SET unanswered_seq = i.seq
      FROM inserted AS i, verdict AS v
     WHERE v.tool_integrity <> 'off'
       AND i.role <> 'tool'
       AND i.status = 'complete'
       AND t.conversation_id = i.conversation_id
       AND t.result_seq IS NULL
       AND t.unanswered_seq IS NULL
), attached AS (
    INSERT INTO message_attachments (conversation_id, seq, attachment_id)
    SELECT i.conversation_id, i.seq, x.id
      FROM inserted AS i, unnest($14::uuid[]) AS x(id)
     ORDER BY x.id
)
SELECT id, conversation_id, seq, role, parts, content, metadata, status, sender_id, reply_to,
       parent_seq, session_no, integrity, feedback_up, feedback_down, edited_at, retracted_at,
       created_at, updated_at, true AS created, NULL::text AS problem,
       NULL::text AS tool_call_id, NULL::uuid AS attachment_id
  FROM inserted
 UNION ALL
SELECT id, conversation_id, seq, role, parts, content, metadata, status, sender_id, reply_to,
       parent_seq, session_no, integrity, feedback_up, feedback_down, edited_at, retracted_at,
       created_at, updated_at, CASE WHEN same THEN false END, NULL, NULL, NULL
  FROM existing
 UNION ALL
SELECT NULL, $2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL,
       CASE WHEN NOT k.allowed THEN 'forbidden' WHEN NOT k.fits THEN 'too_large'
            WHEN NOT k.replies THEN 'reply_to' ELSE 'attachment' END,
       NULL, k.unreadable
  FROM checked AS k
 WHERE NOT (k.allowed AND k.fits AND k.replies AND k.unreadable IS NULL)
 UNION ALL
SELECT NULL, $2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, coalesce(v.over, 'tool_call_unpaired'),
       CASE WHEN v.over IS NULL THEN v.unpaired END, NULL
  FROM verdict AS v
 WHERE v.over IS NOT NULL
    OR (v.unpaired IS NOT NULL AND v.tool_integrity = 'reject');

-- name: get_message
-- One message of a conversation the caller may read, by its id.
-- returns: Message
-- uses: conversation_members_pkey, messages_conversation_id_id_key
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 id uuid
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity, m.feedback_up,
       m.feedback_down, m.edited_at, m.retracted_at, m.created_at, m.updated_at
  FROM messages AS m
 WHERE m.conversation_id = $2
   AND m.id = $3
   AND EXISTS (SELECT 1
                 FROM conversation_members AS mm
                WHERE mm.conversation_id = $2
                  AND mm.user_id = $1
                  AND mnemo_may(mm.role, 'read'));

-- name: list_messages_latest
-- The newest messages of the caller's conversation, returned oldest first. One row with NULL
-- message columns means the conversation exists but has no messages; no row at all means it
-- is missing or not the caller's (one round trip tells both apart).
-- A page ends at $3 - 1 rows or $4 bytes (mnemo_message_bytes, summed in the order of
-- travel), whichever comes first, but holds at least one message; the first row after the
-- page comes back with NULL parts, content and metadata (only to say that more exist).
-- returns: Message
-- uses: messages_active_idx (backward scan: the active branch's messages only)
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 page_size int8             rows wanted + 1
-- $4 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity, m.feedback_up,
       m.feedback_down, m.edited_at, m.retracted_at, m.created_at, m.updated_at
  FROM conversations AS c
  LEFT JOIN LATERAL (
        SELECT w.id, w.conversation_id, w.seq, w.role,
               CASE WHEN w.in_page THEN w.parts END AS parts,
               CASE WHEN w.in_page THEN w.content END AS content,
               CASE WHEN w.in_page THEN w.metadata END AS metadata,
               w.status, w.sender_id, w.reply_to, w.parent_seq, w.session_no, w.integrity,
               w.feedback_up, w.feedback_down, w.edited_at, w.retracted_at, w.created_at,
               w.updated_at
          FROM (
                SELECT r.id, r.conversation_id, r.seq, r.role, r.parts, r.content, r.metadata,
                       r.status, r.sender_id, r.reply_to, r.parent_seq, r.session_no,
                       r.integrity, r.feedback_up, r.feedback_down, r.edited_at,
                       r.retracted_at, r.created_at, r.updated_at, r.n, r.bytes, r.own_bytes,
                       r.n < $3 AND (r.n = 1 OR r.bytes <= $4) AS in_page
                  FROM (
                        SELECT id, conversation_id, seq, role, parts, content, metadata, status,
                               sender_id, reply_to, parent_seq, session_no, integrity,
                               feedback_up, feedback_down, edited_at, retracted_at,
                               created_at, updated_at,
                               row_number() OVER travel AS n,
                               (sum(mnemo_message_bytes(parts_bytes, content, metadata_bytes))
                                   OVER travel)::int8 AS bytes,
                               mnemo_message_bytes(parts_bytes, content, metadata_bytes) AS own_bytes
                          FROM messages
                         WHERE conversation_id = c.id
                           AND active
                        WINDOW travel AS (ORDER BY seq DESC ROWS UNBOUNDED PRECEDING)
                         ORDER BY seq DESC
                         LIMIT $3
                       ) AS r
               ) AS w
         -- the page, and the first row after it (the one before it is in the page)
         WHERE w.n <= 2 OR w.bytes - w.own_bytes <= $4
       ) AS m ON true
 WHERE c.id = $2
   AND EXISTS (SELECT 1
                 FROM conversation_members AS mm
                WHERE mm.conversation_id = $2
                  AND mm.user_id = $1
                  AND mnemo_may(mm.role, 'read'))
 ORDER BY m.seq;

-- name: list_messages_before
-- The page of messages just before seq $3 (older), returned oldest first; same conventions
-- as list_messages_latest.
-- returns: Message
-- uses: messages_active_idx (backward scan from the cursor: the active branch's messages only)
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 before_seq int8
-- $4 page_size int8             rows wanted + 1
-- $5 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity, m.feedback_up,
       m.feedback_down, m.edited_at, m.retracted_at, m.created_at, m.updated_at
  FROM conversations AS c
  LEFT JOIN LATERAL (
        SELECT w.id, w.conversation_id, w.seq, w.role,
               CASE WHEN w.in_page THEN w.parts END AS parts,
               CASE WHEN w.in_page THEN w.content END AS content,
               CASE WHEN w.in_page THEN w.metadata END AS metadata,
               w.status, w.sender_id, w.reply_to, w.parent_seq, w.session_no, w.integrity,
               w.feedback_up, w.feedback_down, w.edited_at, w.retracted_at, w.created_at,
               w.updated_at
          FROM (
                SELECT r.id, r.conversation_id, r.seq, r.role, r.parts, r.content, r.metadata,
                       r.status, r.sender_id, r.reply_to, r.parent_seq, r.session_no,
                       r.integrity, r.feedback_up, r.feedback_down, r.edited_at,
                       r.retracted_at, r.created_at, r.updated_at, r.n, r.bytes, r.own_bytes,
                       r.n < $4 AND (r.n = 1 OR r.bytes <= $5) AS in_page
                  FROM (
                        SELECT id, conversation_id, seq, role, parts, content, metadata, status,
                               sender_id, reply_to, parent_seq, session_no, integrity,
                               feedback_up, feedback_down, edited_at, retracted_at,
                               created_at, updated_at,
                               row_number() OVER travel AS n,
                               (sum(mnemo_message_bytes(parts_bytes, content, metadata_bytes))
                                   OVER travel)::int8 AS bytes,
                               mnemo_message_bytes(parts_bytes, content, metadata_bytes) AS own_bytes
                          FROM messages
                         WHERE conversation_id = c.id
                           AND active
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
   AND EXISTS (SELECT 1
                 FROM conversation_members AS mm
                WHERE mm.conversation_id = $2
                  AND mm.user_id = $1
                  AND mnemo_may(mm.role, 'read'))
 ORDER BY m.seq;

-- name: list_messages_after
-- The page of messages just after seq $3 (newer), oldest first; same conventions as
-- list_messages_latest.
-- returns: Message
-- uses: messages_active_idx (forward scan from the cursor: the active branch's messages only)
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 after_seq int8
-- $4 page_size int8             rows wanted + 1
-- $5 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity, m.feedback_up,
       m.feedback_down, m.edited_at, m.retracted_at, m.created_at, m.updated_at
  FROM conversations AS c
  LEFT JOIN LATERAL (
        SELECT w.id, w.conversation_id, w.seq, w.role,
               CASE WHEN w.in_page THEN w.parts END AS parts,
               CASE WHEN w.in_page THEN w.content END AS content,
               CASE WHEN w.in_page THEN w.metadata END AS metadata,
               w.status, w.sender_id, w.reply_to, w.parent_seq, w.session_no, w.integrity,
               w.feedback_up, w.feedback_down, w.edited_at, w.retracted_at, w.created_at,
               w.updated_at
          FROM (
                SELECT r.id, r.conversation_id, r.seq, r.role, r.parts, r.content, r.metadata,
                       r.status, r.sender_id, r.reply_to, r.parent_seq, r.session_no,
                       r.integrity, r.feedback_up, r.feedback_down, r.edited_at,
                       r.retracted_at, r.created_at, r.updated_at, r.n, r.bytes, r.own_bytes,
                       r.n < $4 AND (r.n = 1 OR r.bytes <= $5) AS in_page
                  FROM (
                        SELECT id, conversation_id, seq, role, parts, content, metadata, status,
                               sender_id, reply_to, parent_seq, session_no, integrity,
                               feedback_up, feedback_down, edited_at, retracted_at,
                               created_at, updated_at,
                               row_number() OVER travel AS n,
                               (sum(mnemo_message_bytes(parts_bytes, content, metadata_bytes))
                                   OVER travel)::int8 AS bytes,
                               mnemo_message_bytes(parts_bytes, content, metadata_bytes) AS own_bytes
                          FROM messages
                         WHERE conversation_id = c.id
                           AND active
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
   AND EXISTS (SELECT 1
                 FROM conversation_members AS mm
                WHERE mm.conversation_id = $2
                  AND mm.user_id = $1
                  AND mnemo_may(mm.role, 'read'))
 ORDER BY m.seq;

-- name: update_message
-- Change a message in one statement: replace its parts ($4), append parts while it is
-- streaming ($5), replace its metadata ($6), change its status ($7); NULL leaves each as it
-- is, and content is derived again from the resulting parts. Only its sender, still a member,
-- changes a message, and never once it is retracted or deleted.
-- Replacing the parts of a complete message is an edit (README "Edits and retraction"):
-- allowed while now() is within $10 seconds of created_at (0: never), it keeps the replaced
-- parts and metadata in message_versions as version `version` (with when and by whom that
-- content was written), moves the message to version + 1 and sets edited_at. Streaming
-- (appending parts, replacing the parts of a streaming message, finalizing) and changing only
-- the metadata are not edits: no version, no window.
-- The message's row is locked first (FOR UPDATE reads its newest version), so concurrent
-- changes queue on it: each sees what the one before wrote (version numbers 1..n, no gaps; the
-- size check counts what concurrent appends added).
-- Nothing changes, and one row with NULL message columns says why (problem), when: the caller
-- is not its sender ('forbidden'); it is retracted ('retracted'); appending to a complete
-- message or reopening it ('complete'); an edit past the window ('edit_window'); parts over
-- the bytes ($8) or parts ($9) allowed, or metadata over $8 bytes ('too_large'; a change
-- that leaves the parts alone does not check them). No row: the message is missing or the
-- caller is not a member.
-- Attachments: $11 are the files the parts given ($4, $5) reference; each must be one the
-- caller may read, else nothing changes ('attachment', attachment_id says which). Their
-- references are added (a reference of an earlier version stays: the version still holds it).
-- returns: Message + problem, attachment_id
-- uses: messages_conversation_id_id_key, conversation_members_pkey, messages_pkey
-- uses: attachments_pkey, message_attachments_attachment_idx, message_attachments_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 id uuid
-- $4 parts jsonb                NULL keeps them
-- $5 append_parts jsonb         NULL appends nothing
-- $6 metadata jsonb             NULL keeps it
-- $7 status text                NULL keeps it
-- $8 max_bytes int8             APP_MAX_MESSAGE_BYTES
-- $9 max_parts int4             APP_MAX_MESSAGE_PARTS
-- $10 edit_window float8        APP_EDIT_WINDOW_SECONDS
-- $11 attachments uuid[]        the files the parts given reference ('{}': none)
WITH patch AS (
    SELECT mnemo_parts_bytes($4::jsonb) AS parts_bytes,
           jsonb_array_length($4::jsonb) AS parts_count,
           coalesce(mnemo_parts_bytes($5::jsonb), 0) AS append_bytes,
           coalesce(jsonb_array_length($5::jsonb), 0) AS append_count,
           octet_length($6::jsonb::text) AS metadata_bytes,
           (SELECT x.id
              FROM unnest($11::uuid[]) AS x(id)
             WHERE NOT EXISTS (SELECT 1
                                 FROM mnemo_readable_attachments($1, $11::uuid[]) AS a
                                WHERE a.id = x.id)
             ORDER BY x.id
             LIMIT 1) AS unreadable
), target AS (
    SELECT m.conversation_id, m.seq, m.parts, m.metadata, m.status, m.version, m.sender_id,
           m.parts_bytes, m.parts_count, m.created_at, m.edited_at, m.retracted_at
      FROM messages AS m
     WHERE m.conversation_id = $2
       AND m.id = $3
       AND EXISTS (SELECT 1
                     FROM conversation_members AS mm
                    WHERE mm.conversation_id = $2
                      AND mm.user_id = $1)
       FOR UPDATE OF m
), checked AS (
    SELECT t.conversation_id, t.seq, t.parts, t.metadata, t.version, t.sender_id,
           coalesce(t.edited_at, t.created_at) AS written_at,
           t.status = 'complete' AND $4::jsonb IS NOT NULL AS is_edit,
           CASE
               WHEN t.sender_id IS DISTINCT FROM $1 THEN 'forbidden'
               WHEN t.retracted_at IS NOT NULL THEN 'retracted'
               WHEN t.status = 'complete' AND ($5::jsonb IS NOT NULL OR $7::text = 'streaming')
                   THEN 'complete'
               WHEN t.status = 'complete' AND $4::jsonb IS NOT NULL
                    AND NOT ($10::float8 > 0
                             AND now() <= t.created_at + make_interval(secs => $10::float8))
                   THEN 'edit_window'
               WHEN ($4::jsonb IS NOT NULL OR $5::jsonb IS NOT NULL)
                    AND (coalesce(p.parts_bytes, t.parts_bytes) + p.append_bytes > $8
                         OR coalesce(p.parts_count, t.parts_count) + p.append_count > $9)
                   THEN 'too_large'
               WHEN p.metadata_bytes > $8 THEN 'too_large'
               WHEN p.unreadable IS NOT NULL THEN 'attachment'
           END AS problem,
           p.unreadable
      FROM target AS t, patch AS p
), updated AS (
    UPDATE messages AS m
       SET parts = coalesce($4::jsonb, m.parts) || coalesce($5::jsonb, '[]'::jsonb),
           content = mnemo_parts_text(coalesce($4::jsonb, m.parts) || coalesce($5::jsonb, '[]'::jsonb)),
           parts_bytes = coalesce(p.parts_bytes, m.parts_bytes) + p.append_bytes,
           parts_count = coalesce(p.parts_count, m.parts_count) + p.append_count,
           metadata = coalesce($6::jsonb, m.metadata),
           metadata_bytes = coalesce(p.metadata_bytes, m.metadata_bytes),
           status = coalesce($7::text, m.status),
           version = m.version + CASE WHEN k.is_edit THEN 1 ELSE 0 END,
           edited_at = CASE WHEN k.is_edit THEN now() ELSE m.edited_at END,
           updated_at = now()
      FROM checked AS k, patch AS p
     WHERE m.conversation_id = k.conversation_id
       AND m.seq = k.seq
       AND k.problem IS NULL
    RETURNING m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
              m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity, m.feedback_up,
              m.feedback_down, m.edited_at, m.retracted_at, m.created_at, m.updated_at
), kept AS (
    INSERT INTO message_versions (conversation_id, seq, version, parts, metadata, edited_at,
                                  edited_by)
    SELECT k.conversation_id, k.seq, k.version, k.parts, k.metadata, k.written_at, k.sender_id
      FROM checked AS k
     WHERE k.is_edit
       AND k.problem IS NULL
       AND EXISTS (SELECT 1 FROM updated)
), attached AS (
    INSERT INTO message_attachments (conversation_id, seq, attachment_id)
    SELECT u.conversation_id, u.seq, x.id
      FROM updated AS u, unnest($11::uuid[]) AS x(id)
     ORDER BY x.id
        ON CONFLICT (conversation_id, seq, attachment_id) DO NOTHING
)
SELECT id, conversation_id, seq, role, parts, content, metadata, status, sender_id, reply_to,
       parent_seq, session_no, integrity, feedback_up, feedback_down, edited_at, retracted_at,
       created_at, updated_at, NULL::text AS problem, NULL::uuid AS attachment_id
  FROM updated
 UNION ALL
SELECT NULL, k.conversation_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, k.problem, k.unreadable
  FROM checked AS k
 WHERE k.problem IS NOT NULL;

-- name: delete_own_message
-- Retract: its sender takes a message back, in one statement (README "Edits and retraction"), while
-- now() is within $4 seconds of its created_at (0: never): its parts, content and metadata are
-- emptied and its earlier versions and file references deleted (the content is gone; a file
-- no other message references is collected after the grace period), retracted_at and
-- retracted_by are set, and it stays where it was as a tombstone: same seq (seqs stay
-- gapless), same parent_seq and place on its branch, still counted by its conversation. A
-- streaming message is complete from then on. Its create digest is cleared, so a retry of the
-- append that made it (the same id) can no longer confirm what it said (409 then).
-- Retracting a retracted (or deleted) message changes nothing and returns it as it is, at
-- any time. The row is locked first (FOR UPDATE: its newest version), so a concurrent edit
-- or append of parts either lands before (and is emptied) or finds it retracted.
-- Nothing changes, and one row with NULL message columns says why (problem), when: the caller
-- is not its sender ('forbidden'); the window has closed ('edit_window'). No row: the message
-- is missing or the caller is not a member.
-- returns: Message + problem
-- uses: messages_conversation_id_id_key, conversation_members_pkey, messages_pkey,
--       message_versions_pkey, message_attachments_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 id uuid
-- $4 edit_window float8         APP_EDIT_WINDOW_SECONDS
WITH target AS (
    SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
           m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity, m.feedback_up,
           m.feedback_down, m.edited_at, m.retracted_at, m.created_at, m.updated_at
      FROM messages AS m
     WHERE m.conversation_id = $2
       AND m.id = $3
       AND EXISTS (SELECT 1
                     FROM conversation_members AS mm
                    WHERE mm.conversation_id = $2
                      AND mm.user_id = $1)
       FOR UPDATE OF m
), checked AS (
    SELECT t.conversation_id, t.seq, t.retracted_at IS NOT NULL AS done,
           CASE
               WHEN t.sender_id IS DISTINCT FROM $1 THEN 'forbidden'
               WHEN t.retracted_at IS NOT NULL THEN NULL
               WHEN NOT ($4::float8 > 0
                         AND now() <= t.created_at + make_interval(secs => $4::float8))
                   THEN 'edit_window'
           END AS problem
      FROM target AS t
), gone AS (
    DELETE FROM message_versions AS v
     USING checked AS k
     WHERE v.conversation_id = k.conversation_id
       AND v.seq = k.seq
       AND k.problem IS NULL
       AND NOT k.done
), unreferenced AS (
    -- its files are no longer referenced by it (collected after the grace period when no
    -- other message references them)
    DELETE FROM message_attachments AS r
     USING checked AS k
     WHERE r.conversation_id = k.conversation_id
       AND r.seq = k.seq
       AND k.problem IS NULL
       AND NOT k.done
), updated AS (
    UPDATE messages AS m
       SET parts = '[]'::jsonb,
           content = '',
           parts_bytes = 0,
           parts_count = 0,
           metadata = '{}'::jsonb,
           metadata_bytes = octet_length('{}'::jsonb::text),
           status = 'complete',
           draft_digest = NULL,
           retracted_at = now(),
           retracted_by = $1,
           updated_at = now()
      FROM checked AS k
     WHERE m.conversation_id = k.conversation_id
       AND m.seq = k.seq
       AND k.problem IS NULL
       AND NOT k.done
    RETURNING m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
              m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity, m.feedback_up,
              m.feedback_down, m.edited_at, m.retracted_at, m.created_at, m.updated_at
)
SELECT id, conversation_id, seq, role, parts, content, metadata, status, sender_id, reply_to,
       parent_seq, session_no, integrity, feedback_up, feedback_down, edited_at, retracted_at,
       created_at, updated_at, NULL::text AS problem
  FROM updated
 UNION ALL
-- already retracted: the tombstone as it is (from the locked row, its newest version)
SELECT t.id, t.conversation_id, t.seq, t.role, t.parts, t.content, t.metadata, t.status,
       t.sender_id, t.reply_to, t.parent_seq, t.session_no, t.integrity, t.feedback_up,
       t.feedback_down, t.edited_at, t.retracted_at, t.created_at, t.updated_at, NULL
  FROM target AS t, checked AS k
 WHERE k.done
   AND k.problem IS NULL
 UNION ALL
SELECT NULL, k.conversation_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, k.problem
  FROM checked AS k
 WHERE k.problem IS NOT NULL;

-- name: delete_message
-- A member whose role may 'delete_message' (owner, admin, moderator) deletes any message, in
-- one statement: as a retraction does (delete_own_message), its content, file references and
-- earlier versions
-- go and a tombstone keeps its place (seq, parent_seq, branch), with retracted_by the deleting
-- member. The conversation's row is not touched: the tombstone still counts in message_count,
-- and last_message_at (when the newest message was written) stays true. Deleting a tombstone
-- changes nothing. allowed: whether the caller's role may; no row: the message is missing or
-- the caller is not a member.
-- returns: value
-- uses: messages_conversation_id_id_key, conversation_members_pkey, messages_pkey,
--       message_versions_pkey, message_attachments_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 id uuid
WITH target AS (
    SELECT m.conversation_id, m.seq, m.retracted_at IS NOT NULL AS done,
           mnemo_may(mm.role, 'delete_message') AS allowed
      FROM messages AS m
      JOIN conversation_members AS mm
        ON mm.conversation_id = $2
       AND mm.user_id = $1
     WHERE m.conversation_id = $2
       AND m.id = $3
       FOR UPDATE OF m
), gone AS (
    DELETE FROM message_versions AS v
     USING target AS t
     WHERE v.conversation_id = t.conversation_id
       AND v.seq = t.seq
       AND t.allowed
       AND NOT t.done
), unreferenced AS (
    DELETE FROM message_attachments AS r
     USING target AS t
     WHERE r.conversation_id = t.conversation_id
       AND r.seq = t.seq
       AND t.allowed
       AND NOT t.done
), updated AS (
    UPDATE messages AS m
       SET parts = '[]'::jsonb,
           content = '',
           parts_bytes = 0,
           parts_count = 0,
           metadata = '{}'::jsonb,
           metadata_bytes = octet_length('{}'::jsonb::text),
           status = 'complete',
           draft_digest = NULL,
           retracted_at = now(),
           retracted_by = $1,
           updated_at = now()
      FROM target AS t
     WHERE m.conversation_id = t.conversation_id
       AND m.seq = t.seq
       AND t.allowed
       AND NOT t.done
)
SELECT t.allowed
  FROM target AS t;

-- name: list_message_versions
-- The earlier versions of a message of a conversation the caller may read, oldest first
-- (version after $4), kept by edits (update_message); the message itself is the newest. One
-- row with NULL version columns: the message has no (more) earlier versions; no row at all:
-- the message is missing or the caller may not read it. A page ends at $5 - 1 rows or $6
-- bytes (parts, their text and metadata, summed in order), whichever comes first, but holds
-- at least one version; the first row after the page comes back with NULL parts, content and
-- metadata (only to say that more exist).
-- returns: MessageVersion
-- uses: messages_conversation_id_id_key, conversation_members_pkey, message_versions_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 message_id uuid
-- $4 after_version int4         0 for the first page
-- $5 page_size int8             rows wanted + 1
-- $6 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT m.id AS message_id, m.seq, w.version,
       CASE WHEN w.in_page THEN w.parts END AS parts,
       CASE WHEN w.in_page THEN w.content END AS content,
       CASE WHEN w.in_page THEN w.metadata END AS metadata,
       w.written_at, w.written_by
  FROM messages AS m
  LEFT JOIN LATERAL (
        SELECT r.version, r.parts, r.content, r.metadata, r.written_at, r.written_by,
               r.n < $5 AND (r.n = 1 OR r.bytes <= $6) AS in_page
          FROM (
                SELECT s.version, s.parts, s.content, s.metadata, s.written_at, s.written_by,
                       s.own_bytes,
                       row_number() OVER travel AS n,
                       (sum(s.own_bytes) OVER travel)::int8 AS bytes
                  FROM (
                        SELECT v.version, v.parts, mnemo_parts_text(v.parts) AS content,
                               v.metadata, v.edited_at AS written_at, v.edited_by AS written_by,
                               mnemo_parts_bytes(v.parts) + octet_length(mnemo_parts_text(v.parts))
                               + octet_length(v.metadata::text) AS own_bytes
                          FROM message_versions AS v
                         WHERE v.conversation_id = m.conversation_id
                           AND v.seq = m.seq
                           AND v.version > $4
                         ORDER BY v.version
                         LIMIT $5
                       ) AS s
                WINDOW travel AS (ORDER BY s.version ROWS UNBOUNDED PRECEDING)
               ) AS r
         -- the page, and the first row after it (the one before it is in the page)
         WHERE r.n <= 2 OR r.bytes - r.own_bytes <= $6
       ) AS w ON true
 WHERE m.conversation_id = $2
   AND m.id = $3
   AND EXISTS (SELECT 1
                 FROM conversation_members AS mm
                WHERE mm.conversation_id = $2
                  AND mm.user_id = $1
                  AND mnemo_may(mm.role, 'read'))
 ORDER BY w.version;

-- Search (README "Search"). Three access paths of search_messages, each its own query so that
-- its index serves it under a generic plan too; the other filters of a search are conditions
-- of the same query, checked on the rows the index finds. Hits come best first: rank (0
-- without text), then newest (created_at, then conversation_id and seq: a total order), with
-- a keyset cursor over the four; a page ends at page_size - 1 rows or max_bytes, as
-- list_messages_latest's do (the row after the page comes without parts, content and
-- metadata, only to say that more exist). conversation_title: the hit's conversation's.
-- Each reads the caller's own conversations (messages.user_id, their owner, leads the indexes)
-- and, merged with them, the conversations shared with the caller as a member (not owner):
-- those are read message by message (conversation_members_user_idx, then each conversation's
-- messages), so their cost grows with their size; an index keyed by member would cost every
-- append to a group a row per member.

-- name: find_messages_matching
-- The caller's messages that match a text query, and facets if given (role, part type, tool,
-- tool state: lexemes of search_vector, see the migration), one GIN scan of messages_search_idx:
-- user_id and the tsquery, the metadata too when given (a custom plan uses it as an index
-- condition, a generic one as a filter). The tsqueries are built once per statement (scalar
-- subqueries: InitPlans) from the parsed terms, never from text spliced into SQL. stems: the
-- English stems of the terms, for the snippet (the same on every row).
-- A narrow created_at range may be read by messages_user_created_idx instead (custom plans).
-- returns: Message + conversation_title, rank, stems
-- uses: messages_search_idx, messages_user_created_idx, messages_pkey, conversations_pkey
-- uses: conversation_members_user_idx
-- $1 user_id uuid
-- $2 terms text[]               the parsed query's terms (mnemo_search_query)
-- $3 negated bool[]
-- $4 clauses int4[]
-- $5 facets text[]              facet lexemes, ANDed (empty: none)
-- $6 conversation_id uuid       NULL: every conversation
-- $7 metadata jsonb             NULL: any
-- $8 since timestamptz          NULL: no lower bound (inclusive)
-- $9 until timestamptz          NULL: no upper bound (exclusive)
-- $10 after_rank float8         cursor: rank of the last hit seen; NULL on the first page
-- $11 after_created_at timestamptz
-- $12 after_conversation_id uuid
-- $13 after_seq int8
-- $14 page_size int8            rows wanted + 1
-- $15 max_bytes int8            APP_MAX_PAGE_BYTES
SELECT h.id, h.conversation_id, h.seq, h.role,
       CASE WHEN h.in_page THEN m.parts END AS parts,
       CASE WHEN h.in_page THEN m.content END AS content,
       CASE WHEN h.in_page THEN m.metadata END AS metadata,
       h.status, m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity,
       m.feedback_up, m.feedback_down, m.edited_at, m.retracted_at, h.created_at, h.updated_at,
       c.title AS conversation_title, h.rank,
       (SELECT tsvector_to_array(to_tsvector('english'::regconfig, array_to_string($2, ' '))))
           AS stems
  FROM (
        SELECT r.*, r.n < $14 AND (r.n = 1 OR r.bytes <= $15) AS in_page
          FROM (
                SELECT k.*, row_number() OVER travel AS n,
                       (sum(k.own_bytes) OVER travel)::int8 AS bytes
                  FROM (
                        SELECT u.*
                          FROM (
                        SELECT x.id, x.conversation_id, x.seq, x.role, x.status, x.created_at,
                               x.updated_at, x.rank, x.own_bytes
                          FROM (
                                SELECT m.id, m.conversation_id, m.seq, m.role, m.status,
                                       m.created_at, m.updated_at,
                                       coalesce(ts_rank_cd(m.search_vector,
                                                           (SELECT mnemo_search_query($2, $3, $4)),
                                                           1)::float8, 0) AS rank,
                                       mnemo_message_bytes(m.parts_bytes, m.content,
                                                           m.metadata_bytes) AS own_bytes
                                  FROM messages AS m
                                 WHERE m.user_id = $1
                                   AND m.search_vector @@ (SELECT mnemo_tsquery_and(
                                                               mnemo_search_query($2, $3, $4),
                                                               mnemo_lexemes_query($5)))
                                   AND ($6::uuid IS NULL OR m.conversation_id = $6)
                                   AND ($7::jsonb IS NULL OR m.metadata @> $7)
                                   AND ($8::timestamptz IS NULL OR m.created_at >= $8)
                                   AND ($9::timestamptz IS NULL OR m.created_at < $9)
                               ) AS x
                         WHERE $10::float8 IS NULL
                            OR (x.rank, x.created_at, x.conversation_id, x.seq) < ($10, $11, $12, $13)
                         ORDER BY x.rank DESC, x.created_at DESC, x.conversation_id DESC,
                                  x.seq DESC
                         LIMIT $14
                               ) AS u
                         UNION ALL
                        (SELECT z.*
                           FROM (SELECT m.id, m.conversation_id, m.seq, m.role, m.status,
                                        m.created_at, m.updated_at,
                                        coalesce(ts_rank_cd(m.search_vector,
                                                            (SELECT mnemo_search_query($2, $3, $4)),
                                                            1)::float8, 0) AS rank,
                                        mnemo_message_bytes(m.parts_bytes, m.content,
                                                            m.metadata_bytes) AS own_bytes
                                   FROM conversation_members AS mm
                                   JOIN messages AS m ON m.conversation_id = mm.conversation_id
                                  WHERE mm.user_id = $1
                                    AND mm.role <> 'owner'
                                    AND mnemo_may(mm.role, 'read')
                                    AND m.search_vector @@ (SELECT mnemo_tsquery_and(
                                                                mnemo_search_query($2, $3, $4),
                                                                mnemo_lexemes_query($5)))
                                    AND ($7::jsonb IS NULL OR m.metadata @> $7)
                                    AND ($6::uuid IS NULL OR m.conversation_id = $6)
                                    AND ($8::timestamptz IS NULL OR m.created_at >= $8)
                                    AND ($9::timestamptz IS NULL OR m.created_at < $9)
                                ) AS z
                          WHERE $10::float8 IS NULL
                             OR (z.rank, z.created_at, z.conversation_id, z.seq)
                                < ($10, $11, $12, $13)
                          ORDER BY z.rank DESC, z.created_at DESC, z.conversation_id DESC,
                                   z.seq DESC
                          LIMIT $14)
                         ORDER BY rank DESC, created_at DESC, conversation_id DESC, seq DESC
                         LIMIT $14
                       ) AS k
                WINDOW travel AS (ORDER BY k.rank DESC, k.created_at DESC, k.conversation_id DESC,
                                           k.seq DESC
                                  ROWS UNBOUNDED PRECEDING)
               ) AS r
       ) AS h
  JOIN messages AS m ON m.conversation_id = h.conversation_id AND m.seq = h.seq
  JOIN conversations AS c ON c.id = h.conversation_id
 -- the page, and the first row after it (the one before it is in the page)
 WHERE h.n <= 2 OR h.bytes - h.own_bytes <= $15
 ORDER BY h.rank DESC, h.created_at DESC, h.conversation_id DESC, h.seq DESC;

-- name: find_messages_by_facets
-- The caller's newest messages with these facets (role, part type, tool, tool state; no text
-- asked for), and metadata ($4) if given. Newest first, rank 0. Two ways, in one statement:
-- the user's 400 newest messages (messages_user_created_idx, backwards from the cursor) are
-- read first; if they hold a full page, or are all there is, the page is theirs (the newest
-- matches overall: any other is older). Only otherwise (a rare filter) does the GIN scan of
-- messages_search_idx run (a gate the executor checks once). A common filter so costs a
-- page of the newest messages, not every match of the user (sorted); a rare one, one GIN
-- scan more than the probe.
-- returns: Message + conversation_title, rank
-- uses: messages_user_created_idx, messages_search_idx, messages_pkey, conversations_pkey
-- uses: conversation_members_user_idx
-- $1 user_id uuid
-- $2 facets text[]              facet lexemes, ANDed (at least one)
-- $3 conversation_id uuid       NULL: every conversation
-- $4 metadata jsonb             NULL: any
-- $5 since timestamptz          NULL: no lower bound (inclusive)
-- $6 until timestamptz          NULL: no upper bound (exclusive)
-- $7 after_created_at timestamptz  cursor: the last hit seen; NULL on the first page
-- $8 after_conversation_id uuid
-- $9 after_seq int8
-- $10 page_size int8            rows wanted + 1
-- $11 max_bytes int8            APP_MAX_PAGE_BYTES
SELECT h.id, h.conversation_id, h.seq, h.role,
       CASE WHEN h.in_page THEN m.parts END AS parts,
       CASE WHEN h.in_page THEN m.content END AS content,
       CASE WHEN h.in_page THEN m.metadata END AS metadata,
       h.status, m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity,
       m.feedback_up, m.feedback_down, m.edited_at, m.retracted_at, h.created_at, h.updated_at,
       c.title AS conversation_title, 0::float8 AS rank
  FROM (
        SELECT r.*, r.n < $10 AND (r.n = 1 OR r.bytes <= $11) AS in_page
          FROM (
                SELECT k.*, row_number() OVER travel AS n,
                       (sum(k.own_bytes) OVER travel)::int8 AS bytes
                  FROM (
                        SELECT u.*
                          FROM (
                        WITH newest AS MATERIALIZED (
                            SELECT m.id, m.conversation_id, m.seq, m.role, m.status,
                                   m.created_at, m.updated_at, m.search_vector, m.metadata,
                                   mnemo_message_bytes(m.parts_bytes, m.content,
                                                       m.metadata_bytes) AS own_bytes
                              FROM messages AS m
                             WHERE m.user_id = $1
                               AND (m.created_at, m.conversation_id, m.seq)
                                   < (coalesce($7, 'infinity'::timestamptz),
                                      coalesce($8, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid),
                                      coalesce($9, 9223372036854775807))
                               AND m.created_at >= coalesce($5, '-infinity'::timestamptz)
                               AND m.created_at < coalesce($6, 'infinity'::timestamptz)
                               AND ($3::uuid IS NULL OR m.conversation_id = $3)
                             ORDER BY m.created_at DESC, m.conversation_id DESC, m.seq DESC
                             LIMIT 400
                        ), probed AS MATERIALIZED (
                            SELECT w.id, w.conversation_id, w.seq, w.role, w.status,
                                   w.created_at, w.updated_at, w.own_bytes
                              FROM newest AS w
                             WHERE w.search_vector @@ (SELECT mnemo_lexemes_query($2))
                               AND ($4::jsonb IS NULL OR w.metadata @> $4)
                             ORDER BY w.created_at DESC, w.conversation_id DESC, w.seq DESC
                             LIMIT $10
                        ), indexed AS MATERIALIZED (
                            -- Every match, by the GIN index: materialized, so that the order
                            -- asked of it (and the LIMIT) cannot draw the planner to the
                            -- created_at index, which would read all the user's messages.
                            SELECT m.id, m.conversation_id, m.seq, m.role, m.status,
                                   m.created_at, m.updated_at,
                                   mnemo_message_bytes(m.parts_bytes, m.content,
                                                       m.metadata_bytes) AS own_bytes
                              FROM messages AS m
                             WHERE m.user_id = $1
                               AND m.search_vector @@ (SELECT mnemo_lexemes_query($2))
                               AND ($3::uuid IS NULL OR m.conversation_id = $3)
                               AND ($4::jsonb IS NULL OR m.metadata @> $4)
                               AND ($5::timestamptz IS NULL OR m.created_at >= $5)
                               AND ($6::timestamptz IS NULL OR m.created_at < $6)
                               AND ($7::timestamptz IS NULL
                                    OR (m.created_at, m.conversation_id, m.seq) < ($7, $8, $9))
                        )
                        SELECT p.id, p.conversation_id, p.seq, p.role, p.status, p.created_at,
                               p.updated_at, p.own_bytes
                          FROM probed AS p
                         WHERE (SELECT count(*) FROM probed) = $10
                            OR (SELECT count(*) FROM newest) < 400
                         UNION ALL
                        (SELECT g.id, g.conversation_id, g.seq, g.role, g.status, g.created_at,
                                g.updated_at, g.own_bytes
                           FROM indexed AS g
                          WHERE (SELECT count(*) FROM probed) < $10
                            AND (SELECT count(*) FROM newest) = 400
                          ORDER BY g.created_at DESC, g.conversation_id DESC, g.seq DESC
                          LIMIT $10)
                               ) AS u
                         UNION ALL
                        (SELECT z.*
                           FROM (SELECT m.id, m.conversation_id, m.seq, m.role, m.status,
                                        m.created_at, m.updated_at,
                                        mnemo_message_bytes(m.parts_bytes, m.content,
                                                            m.metadata_bytes) AS own_bytes
                                   FROM conversation_members AS mm
                                   JOIN messages AS m ON m.conversation_id = mm.conversation_id
                                  WHERE mm.user_id = $1
                                    AND mm.role <> 'owner'
                                    AND mnemo_may(mm.role, 'read')
                                    AND m.search_vector @@ (SELECT mnemo_lexemes_query($2))
                                    AND ($4::jsonb IS NULL OR m.metadata @> $4)
                                    AND ($3::uuid IS NULL OR m.conversation_id = $3)
                                    AND ($5::timestamptz IS NULL OR m.created_at >= $5)
                                    AND ($6::timestamptz IS NULL OR m.created_at < $6)
                                ) AS z
                          WHERE $7::timestamptz IS NULL
                             OR (z.created_at, z.conversation_id, z.seq) < ($7, $8, $9)
                          ORDER BY z.created_at DESC, z.conversation_id DESC, z.seq DESC
                          LIMIT $10)
                         ORDER BY created_at DESC, conversation_id DESC, seq DESC
                         LIMIT $10
                       ) AS k
                WINDOW travel AS (ORDER BY k.created_at DESC, k.conversation_id DESC, k.seq DESC
                                  ROWS UNBOUNDED PRECEDING)
               ) AS r
       ) AS h
  JOIN messages AS m ON m.conversation_id = h.conversation_id AND m.seq = h.seq
  JOIN conversations AS c ON c.id = h.conversation_id
 -- the page, and the first row after it (the one before it is in the page)
 WHERE h.n <= 2 OR h.bytes - h.own_bytes <= $11
 ORDER BY h.created_at DESC, h.conversation_id DESC, h.seq DESC;

-- name: find_messages_by_metadata
-- The caller's newest messages whose metadata contains $2 (and no text nor facet asked for):
-- newest first, rank 0; the same two ways as find_messages_by_facets (the newest 400
-- messages first, then, for a rare value, the metadata column of messages_search_idx).
-- returns: Message + conversation_title, rank
-- uses: messages_user_created_idx, messages_search_idx, messages_pkey, conversations_pkey
-- uses: conversation_members_user_idx
-- $1 user_id uuid
-- $2 metadata jsonb
-- $3 conversation_id uuid       NULL: every conversation
-- $4 since timestamptz          NULL: no lower bound (inclusive)
-- $5 until timestamptz          NULL: no upper bound (exclusive)
-- $6 after_created_at timestamptz  cursor: the last hit seen; NULL on the first page
-- $7 after_conversation_id uuid
-- $8 after_seq int8
-- $9 page_size int8             rows wanted + 1
-- $10 max_bytes int8            APP_MAX_PAGE_BYTES
SELECT h.id, h.conversation_id, h.seq, h.role,
       CASE WHEN h.in_page THEN m.parts END AS parts,
       CASE WHEN h.in_page THEN m.content END AS content,
       CASE WHEN h.in_page THEN m.metadata END AS metadata,
       h.status, m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity,
       m.feedback_up, m.feedback_down, m.edited_at, m.retracted_at, h.created_at, h.updated_at,
       c.title AS conversation_title, 0::float8 AS rank
  FROM (
        SELECT r.*, r.n < $9 AND (r.n = 1 OR r.bytes <= $10) AS in_page
          FROM (
                SELECT k.*, row_number() OVER travel AS n,
                       (sum(k.own_bytes) OVER travel)::int8 AS bytes
                  FROM (
                        SELECT u.*
                          FROM (
                        WITH newest AS MATERIALIZED (
                            SELECT m.id, m.conversation_id, m.seq, m.role, m.status,
                                   m.created_at, m.updated_at, m.metadata,
                                   mnemo_message_bytes(m.parts_bytes, m.content,
                                                       m.metadata_bytes) AS own_bytes
                              FROM messages AS m
                             WHERE m.user_id = $1
                               AND (m.created_at, m.conversation_id, m.seq)
                                   < (coalesce($6, 'infinity'::timestamptz),
                                      coalesce($7, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid),
                                      coalesce($8, 9223372036854775807))
                               AND m.created_at >= coalesce($4, '-infinity'::timestamptz)
                               AND m.created_at < coalesce($5, 'infinity'::timestamptz)
                               AND ($3::uuid IS NULL OR m.conversation_id = $3)
                             ORDER BY m.created_at DESC, m.conversation_id DESC, m.seq DESC
                             LIMIT 400
                        ), probed AS MATERIALIZED (
                            SELECT w.id, w.conversation_id, w.seq, w.role, w.status,
                                   w.created_at, w.updated_at, w.own_bytes
                              FROM newest AS w
                             WHERE w.metadata @> $2
                             ORDER BY w.created_at DESC, w.conversation_id DESC, w.seq DESC
                             LIMIT $9
                        ), indexed AS MATERIALIZED (
                            -- Every match, by the GIN index: materialized, so that the order
                            -- asked of it (and the LIMIT) cannot draw the planner to the
                            -- created_at index, which would read all the user's messages.
                            SELECT m.id, m.conversation_id, m.seq, m.role, m.status,
                                   m.created_at, m.updated_at,
                                   mnemo_message_bytes(m.parts_bytes, m.content,
                                                       m.metadata_bytes) AS own_bytes
                              FROM messages AS m
                             WHERE m.user_id = $1
                               AND m.metadata @> $2
                               AND ($3::uuid IS NULL OR m.conversation_id = $3)
                               AND ($4::timestamptz IS NULL OR m.created_at >= $4)
                               AND ($5::timestamptz IS NULL OR m.created_at < $5)
                               AND ($6::timestamptz IS NULL
                                    OR (m.created_at, m.conversation_id, m.seq) < ($6, $7, $8))
                        )
                        SELECT p.id, p.conversation_id, p.seq, p.role, p.status, p.created_at,
                               p.updated_at, p.own_bytes
                          FROM probed AS p
                         WHERE (SELECT count(*) FROM probed) = $9
                            OR (SELECT count(*) FROM newest) < 400
                         UNION ALL
                        (SELECT g.id, g.conversation_id, g.seq, g.role, g.status, g.created_at,
                                g.updated_at, g.own_bytes
                           FROM indexed AS g
                          WHERE (SELECT count(*) FROM probed) < $9
                            AND (SELECT count(*) FROM newest) = 400
                          ORDER BY g.created_at DESC, g.conversation_id DESC, g.seq DESC
                          LIMIT $9)
                               ) AS u
                         UNION ALL
                        (SELECT z.*
                           FROM (SELECT m.id, m.conversation_id, m.seq, m.role, m.status,
                                        m.created_at, m.updated_at,
                                        mnemo_message_bytes(m.parts_bytes, m.content,
                                                            m.metadata_bytes) AS own_bytes
                                   FROM conversation_members AS mm
                                   JOIN messages AS m ON m.conversation_id = mm.conversation_id
                                  WHERE mm.user_id = $1
                                    AND mm.role <> 'owner'
                                    AND mnemo_may(mm.role, 'read')
                                    AND m.metadata @> $2
                                    AND ($3::uuid IS NULL OR m.conversation_id = $3)
                                    AND ($4::timestamptz IS NULL OR m.created_at >= $4)
                                    AND ($5::timestamptz IS NULL OR m.created_at < $5)
                                ) AS z
                          WHERE $6::timestamptz IS NULL
                             OR (z.created_at, z.conversation_id, z.seq) < ($6, $7, $8)
                          ORDER BY z.created_at DESC, z.conversation_id DESC, z.seq DESC
                          LIMIT $9)
                         ORDER BY created_at DESC, conversation_id DESC, seq DESC
                         LIMIT $9
                       ) AS k
                WINDOW travel AS (ORDER BY k.created_at DESC, k.conversation_id DESC, k.seq DESC
                                  ROWS UNBOUNDED PRECEDING)
               ) AS r
       ) AS h
  JOIN messages AS m ON m.conversation_id = h.conversation_id AND m.seq = h.seq
  JOIN conversations AS c ON c.id = h.conversation_id
 -- the page, and the first row after it (the one before it is in the page)
 WHERE h.n <= 2 OR h.bytes - h.own_bytes <= $10
 ORDER BY h.created_at DESC, h.conversation_id DESC, h.seq DESC;

-- name: find_messages_recent
-- The caller's newest messages, with neither text, facet nor metadata asked for: a backward
-- scan of messages_user_created_idx from the cursor, whose bounds (and the created_at range)
-- are index conditions under any plan: a missing bound is infinity, not a NULL test. One
-- conversation ($2) is a filter on that scan. Rank 0.
-- returns: Message + conversation_title, rank
-- uses: messages_user_created_idx, messages_pkey, conversations_pkey
-- uses: conversation_members_user_idx
-- $1 user_id uuid
-- $2 conversation_id uuid       NULL: every conversation
-- $3 since timestamptz          NULL: no lower bound (inclusive)
-- $4 until timestamptz          NULL: no upper bound (exclusive)
-- $5 after_created_at timestamptz  cursor: the last hit seen; NULL on the first page
-- $6 after_conversation_id uuid
-- $7 after_seq int8
-- $8 page_size int8             rows wanted + 1
-- $9 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT h.id, h.conversation_id, h.seq, h.role,
       CASE WHEN h.in_page THEN m.parts END AS parts,
       CASE WHEN h.in_page THEN m.content END AS content,
       CASE WHEN h.in_page THEN m.metadata END AS metadata,
       h.status, m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity,
       m.feedback_up, m.feedback_down, m.edited_at, m.retracted_at, h.created_at, h.updated_at,
       c.title AS conversation_title, 0::float8 AS rank
  FROM (
        SELECT r.*, r.n < $8 AND (r.n = 1 OR r.bytes <= $9) AS in_page
          FROM (
                SELECT k.*, row_number() OVER travel AS n,
                       (sum(k.own_bytes) OVER travel)::int8 AS bytes
                  FROM (
                        SELECT u.*
                          FROM (
                        SELECT m.id, m.conversation_id, m.seq, m.role, m.status, m.created_at,
                               m.updated_at,
                               mnemo_message_bytes(m.parts_bytes, m.content, m.metadata_bytes)
                                   AS own_bytes
                          FROM messages AS m
                         WHERE m.user_id = $1
                           AND (m.created_at, m.conversation_id, m.seq)
                               < (coalesce($5, 'infinity'::timestamptz),
                                  coalesce($6, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid),
                                  coalesce($7, 9223372036854775807))
                           AND m.created_at >= coalesce($3, '-infinity'::timestamptz)
                           AND m.created_at < coalesce($4, 'infinity'::timestamptz)
                           AND ($2::uuid IS NULL OR m.conversation_id = $2)
                         ORDER BY m.created_at DESC, m.conversation_id DESC, m.seq DESC
                         LIMIT $8
                               ) AS u
                         UNION ALL
                        (SELECT z.*
                           FROM (SELECT m.id, m.conversation_id, m.seq, m.role, m.status,
                                        m.created_at, m.updated_at,
                                        mnemo_message_bytes(m.parts_bytes, m.content,
                                                            m.metadata_bytes) AS own_bytes
                                   FROM conversation_members AS mm
                                   JOIN messages AS m ON m.conversation_id = mm.conversation_id
                                  WHERE mm.user_id = $1
                                    AND mm.role <> 'owner'
                                    AND mnemo_may(mm.role, 'read')
                                    AND ($2::uuid IS NULL OR m.conversation_id = $2)
                                    AND ($3::timestamptz IS NULL OR m.created_at >= $3)
                                    AND ($4::timestamptz IS NULL OR m.created_at < $4)
                                ) AS z
                          WHERE $5::timestamptz IS NULL
                             OR (z.created_at, z.conversation_id, z.seq) < ($5, $6, $7)
                          ORDER BY z.created_at DESC, z.conversation_id DESC, z.seq DESC
                          LIMIT $8)
                         ORDER BY created_at DESC, conversation_id DESC, seq DESC
                         LIMIT $8
                       ) AS k
                WINDOW travel AS (ORDER BY k.created_at DESC, k.conversation_id DESC, k.seq DESC
                                  ROWS UNBOUNDED PRECEDING)
               ) AS r
       ) AS h
  JOIN messages AS m ON m.conversation_id = h.conversation_id AND m.seq = h.seq
  JOIN conversations AS c ON c.id = h.conversation_id
 -- the page, and the first row after it (the one before it is in the page)
 WHERE h.n <= 2 OR h.bytes - h.own_bytes <= $9
 ORDER BY h.created_at DESC, h.conversation_id DESC, h.seq DESC;

-- name: list_messages_flagged
-- A page of the conversation's flagged messages (integrity set: stored while its
-- tool_integrity was 'flag'; README "Tool-call integrity"), oldest first, after seq $3 (0 for
-- the first page). One row with NULL message columns: the caller may read the conversation
-- but none is flagged in the range; no row at all: missing or not a member.
-- returns: Message
-- uses: conversation_members_pkey, messages_flagged_idx
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 after_seq int8
-- $4 page_size int8
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity, m.feedback_up,
       m.feedback_down, m.edited_at, m.retracted_at, m.created_at, m.updated_at
  FROM conversation_members AS mm
  LEFT JOIN LATERAL (
        SELECT f.id, f.conversation_id, f.seq, f.role, f.parts, f.content, f.metadata,
               f.status, f.sender_id, f.reply_to, f.parent_seq, f.session_no, f.integrity,
               f.feedback_up, f.feedback_down, f.edited_at, f.retracted_at, f.created_at,
               f.updated_at
          FROM messages AS f
         WHERE f.conversation_id = $2
           AND f.integrity IS NOT NULL
           AND f.seq > $3
         ORDER BY f.seq
         LIMIT $4) AS m ON true
 WHERE mm.conversation_id = $2
   AND mm.user_id = $1
   AND mnemo_may(mm.role, 'read')
 ORDER BY m.seq;

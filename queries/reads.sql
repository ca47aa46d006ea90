-- Read state of conversation members: read and delivery positions (seqs), unread counts and
-- lists, read receipts and per-message delivery status. Every query is scoped by membership:
-- the caller ($1 user_id) must be a member of the conversation (no row otherwise), and a
-- member whose role lacks the 'read' right is told so (allowed = false) and changes nothing.
-- A member's unread messages are those after their last_read_seq on the active branch, not
-- retracted, not their own (sender_id IS DISTINCT FROM the member: an agent's or system
-- message without a sender counts for everyone); counted through messages_unread_idx, whose
-- predicate is exactly "active and not retracted" (with the sender beside each seq: an
-- index-only scan), or messages_active_idx (the active branch; retraction and sender then
-- read from the heap), whichever the planner finds cheaper: either way a range scan from the
-- read position that stops at a cap, so a count costs at most the cap's index entries and
-- nothing per message per reader is ever stored.

-- fragment: unread_rows
-- The unread messages of the member row mm, in seq order: each query closes it with its cap
-- ("LIMIT $n") and counts the rows.
SELECT 1
  FROM messages AS m
 WHERE m.conversation_id = mm.conversation_id
   AND m.seq > mm.last_read_seq
   AND m.active
   AND m.retracted_at IS NULL
   AND m.sender_id IS DISTINCT FROM mm.user_id
 ORDER BY m.seq

-- name: get_read_state
-- The caller's read state in one conversation: read and delivery positions, the
-- conversation's last seq and the unread count (at most $3; capped when it reached it).
-- No row: not a member.
-- returns: ReadState + allowed
-- uses: conversation_members_pkey, conversations_pkey, messages_unread_idx, messages_active_idx
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 cap int8                   count at most this many
SELECT mm.conversation_id, mm.last_read_seq, mm.delivered_seq, c.last_seq, u.unread,
       u.unread >= $3 AS capped, mnemo_may(mm.role, 'read') AS allowed
  FROM conversation_members AS mm
  JOIN conversations AS c ON c.id = mm.conversation_id
 CROSS JOIN LATERAL (
        SELECT count(*) AS unread
          FROM (
                {{unread_rows}}
                 LIMIT $3
               ) AS unread_rows
       ) AS u
 WHERE mm.conversation_id = $2
   AND mm.user_id = $1;

-- name: update_read_state
-- Move the caller's read position ($5 true; the delivery position comes along, it is never
-- below the read one) or delivery position alone ($5 false) up to seq $4 (NULL: the
-- conversation's last seq), never backwards (GREATEST, evaluated again on the row's newest
-- version when a concurrent statement moved it first). A seq beyond the conversation's last
-- seq is clamped to it (a position past every message would hide the next ones). A role
-- without the right to read: allowed = false, nothing changes. No row: not a member.
-- A mark that would move nothing writes nothing (clients mark often). The positions returned
-- are then GREATEST(the statement's snapshot, $4): a lower bound of the stored ones, which a
-- concurrent mark may have moved further, and never below what was asked. The unread count
-- is that of the returned read position.
-- returns: ReadState + allowed
-- uses: conversation_members_pkey, conversations_pkey, messages_unread_idx, messages_active_idx
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 cap int8                   count at most this many unread messages
-- $4 seq int8                   NULL: the last seq
-- $5 mark_read bool             false: the delivery position only
WITH target AS (
    SELECT mm.conversation_id, mm.user_id, mm.last_read_seq, mm.delivered_seq, c.last_seq,
           least(coalesce($4, c.last_seq), c.last_seq) AS seq,
           mnemo_may(mm.role, 'read') AS allowed
      FROM conversation_members AS mm
      JOIN conversations AS c ON c.id = mm.conversation_id
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), moved AS (
    UPDATE conversation_members AS mm
       SET last_read_seq = CASE WHEN $5 THEN greatest(mm.last_read_seq, t.seq)
                                ELSE mm.last_read_seq END,
           delivered_seq = greatest(mm.delivered_seq, t.seq)
      FROM target AS t
     WHERE mm.conversation_id = t.conversation_id
       AND mm.user_id = t.user_id
       AND t.allowed
       AND (t.seq > mm.delivered_seq OR ($5 AND t.seq > mm.last_read_seq))
    RETURNING mm.conversation_id, mm.user_id, mm.last_read_seq, mm.delivered_seq
), result AS (
    SELECT t.conversation_id, t.user_id, t.last_seq, t.allowed,
           CASE WHEN v.conversation_id IS NOT NULL THEN v.last_read_seq
                WHEN t.allowed AND $5 THEN greatest(t.last_read_seq, t.seq)
                ELSE t.last_read_seq END AS last_read_seq,
           CASE WHEN v.conversation_id IS NOT NULL THEN v.delivered_seq
                WHEN t.allowed THEN greatest(t.delivered_seq, t.seq)
                ELSE t.delivered_seq END AS delivered_seq
      FROM target AS t
      LEFT JOIN moved AS v ON true
)
SELECT mm.conversation_id, mm.last_read_seq, mm.delivered_seq, mm.last_seq, u.unread,
       u.unread >= $3 AS capped, mm.allowed
  FROM result AS mm
 CROSS JOIN LATERAL (
        SELECT count(*) AS unread
          FROM (
                {{unread_rows}}
                 LIMIT $3
               ) AS unread_rows
       ) AS u;

-- name: list_unread_counts
-- The caller's unread messages over all their conversations, in one statement that stops
-- early: $3 caps each conversation's count, $5 the total.
-- * conversations: how many of the caller's conversations have an unread message (exact: one
--   index probe per membership, the membership read from conversation_members_user_idx with
--   its read position);
-- * total: the unread messages over them, each conversation counting at most $3, the scan
--   ending at $5 rows; capped when the total is a lower bound (it reached $5, or a
--   conversation reached $3);
-- * one page of the conversations with unread messages, by conversation_id after $2 ($4
--   rows: the gateway asks one more than it shows), each with its count (at most $3).
-- The totals are on every row; with no conversation in the page, one row of NULL
-- conversation_id, last_read_seq and unread carries them. Roles without the right to read
-- are left out (a join with the rights rows, not a function call per membership).
-- returns: columns conversation_id, last_read_seq, unread, total, conversations, capped
-- uses: conversation_members_user_idx, messages_unread_idx, messages_active_idx
-- $1 user_id uuid
-- $2 after_conversation_id uuid  cursor: the last conversation of the previous page
-- $3 cap int8                   count at most this many per conversation
-- $4 page_size int8             rows wanted + 1
-- $5 total_cap int8             count at most this many in all
WITH flagged AS MATERIALIZED (
    SELECT mm.conversation_id, mm.user_id, mm.last_read_seq
      FROM conversation_members AS mm
      JOIN conversation_rights AS r ON r.role = mm.role AND r.action = 'read'
     WHERE mm.user_id = $1
       AND EXISTS (
            {{unread_rows}}
           )
), totals AS (
    SELECT coalesce(sum(g.n), 0)::int8 AS total,
           coalesce(sum(g.n) >= $5 OR bool_or(g.n >= $3), false) AS capped,
           (SELECT count(*) FROM flagged) AS conversations
      FROM (SELECT t.conversation_id, count(*) AS n
              FROM (SELECT mm.conversation_id
                      FROM flagged AS mm
                     CROSS JOIN LATERAL (
                            {{unread_rows}}
                             LIMIT $3
                           ) AS u
                     LIMIT $5
                   ) AS t
             GROUP BY t.conversation_id
           ) AS g
)
SELECT p.conversation_id, p.last_read_seq, p.unread, t.total, t.conversations, t.capped
  FROM totals AS t
  LEFT JOIN LATERAL (
        -- the page first, then the counts of its conversations only
        SELECT mm.conversation_id, mm.last_read_seq, u.unread
          FROM (SELECT f.conversation_id, f.user_id, f.last_read_seq
                  FROM flagged AS f
                 WHERE f.conversation_id > $2
                 ORDER BY f.conversation_id
                 LIMIT $4
               ) AS mm
         CROSS JOIN LATERAL (
                SELECT count(*) AS unread
                  FROM (
                        {{unread_rows}}
                         LIMIT $3
                       ) AS unread_rows
               ) AS u
       ) AS p ON true
 ORDER BY p.conversation_id;

-- name: list_unread_counts_of
-- The caller's unread count (at most $3) in each of the conversations $2, e.g. the page of
-- the conversation list a client shows: one row per conversation of them the caller is a
-- member of with the right to read, by conversation_id; the others are left out (a missing
-- conversation and another's look alike).
-- returns: UnreadCount
-- uses: conversation_members_user_idx, messages_unread_idx, messages_active_idx
-- $1 user_id uuid
-- $2 conversation_ids uuid[]
-- $3 cap int8                   count at most this many per conversation
SELECT mm.conversation_id, mm.last_read_seq, u.unread, u.unread >= $3 AS capped
  FROM conversation_members AS mm
  JOIN conversation_rights AS r ON r.role = mm.role AND r.action = 'read'
 CROSS JOIN LATERAL (
        SELECT count(*) AS unread
          FROM (
                {{unread_rows}}
                 LIMIT $3
               ) AS unread_rows
       ) AS u
 WHERE mm.user_id = $1
   AND mm.conversation_id = ANY($2::uuid[])
 ORDER BY mm.conversation_id;

-- name: list_unread_messages
-- The caller's unread messages of one conversation (see the top of this file), oldest first,
-- after seq $3 as well (a keyset cursor; 0 for the first page). A page ends at $4 - 1 rows or
-- $5 bytes (mnemo_message_bytes, summed in seq order), whichever comes first, but holds at
-- least one message; the first row after the page comes back with NULL parts, content and
-- metadata (only to say that more exist). One row with NULL message columns: a member with
-- nothing (more) unread; allowed = false: a role without the right to read. No row: not a
-- member.
-- returns: Message + allowed
-- uses: conversation_members_pkey, messages_unread_idx, messages_active_idx
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 after_seq int8
-- $4 page_size int8             rows wanted + 1
-- $5 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT w.id, w.conversation_id, w.seq, w.role,
       CASE WHEN w.in_page THEN w.parts END AS parts,
       CASE WHEN w.in_page THEN w.content END AS content,
       CASE WHEN w.in_page THEN w.metadata END AS metadata,
       w.status, w.sender_id, w.reply_to, w.parent_seq, w.session_no, w.integrity,
       w.feedback_up, w.feedback_down, w.edited_at, w.retracted_at, w.created_at,
       w.updated_at, mnemo_may(mm.role, 'read') AS allowed
  FROM conversation_members AS mm
  LEFT JOIN LATERAL (
        SELECT r.id, r.conversation_id, r.seq, r.role, r.parts, r.content, r.metadata,
               r.status, r.sender_id, r.reply_to, r.parent_seq, r.session_no, r.integrity,
               r.feedback_up, r.feedback_down, r.edited_at, r.retracted_at, r.created_at,
               r.updated_at, r.n, r.bytes, r.own_bytes,
               r.n < $4 AND (r.n = 1 OR r.bytes <= $5) AS in_page
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
                 WHERE m.conversation_id = mm.conversation_id
                   AND m.seq > greatest(mm.last_read_seq, $3)
                   AND m.active
                   AND m.retracted_at IS NULL
                   AND m.sender_id IS DISTINCT FROM mm.user_id
                WINDOW travel AS (ORDER BY m.seq ROWS UNBOUNDED PRECEDING)
                 ORDER BY m.seq
                 LIMIT $4
               ) AS r
       ) AS w
    -- the page, and the first row after it (the one before it is in the page)
    ON mnemo_may(mm.role, 'read') AND (w.n <= 2 OR w.bytes - w.own_bytes <= $5)
 WHERE mm.conversation_id = $2
   AND mm.user_id = $1
 ORDER BY w.seq;

-- name: list_message_receipts
-- Read receipts of message $3: the counts over its recipients (how many, how many have read
-- it, how many have it delivered; its delivery status follows from them) on every row, and
-- one page of the recipients by user_id after $4 ($5 rows: the gateway asks one more than it
-- shows). Always at least one row for a member: with no recipient in the page, one row of
-- NULL user_id, role, read and delivered. A missing message: NULL seq. No row: not a member.
-- returns: columns allowed, seq, sender_id, recipients, read_count, delivered_count, user_id, role, read, delivered
-- uses: conversation_members_pkey, messages_conversation_id_id_key
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 message_id uuid
-- $4 after_user_id uuid         cursor: the last recipient of the previous page
-- $5 page_size int8             rows wanted + 1
WITH msg AS MATERIALIZED (
    SELECT m.seq, m.sender_id, m.created_at
      FROM conversation_members AS mm
      JOIN messages AS m ON m.conversation_id = mm.conversation_id
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
       AND m.id = $3
       AND mnemo_may(mm.role, 'read')
), everyone AS MATERIALIZED (
    -- its recipients: the members other than its sender who had joined when it was written
    SELECT rm.user_id, rm.role, rm.last_read_seq >= msg.seq AS read,
           rm.delivered_seq >= msg.seq AS delivered
      FROM msg
      JOIN conversation_members AS rm ON rm.conversation_id = $2
     WHERE rm.user_id IS DISTINCT FROM msg.sender_id
       AND rm.joined_at <= msg.created_at
), counts AS (
    SELECT count(*) AS recipients, count(*) FILTER (WHERE e.read) AS read_count,
           count(*) FILTER (WHERE e.delivered) AS delivered_count
      FROM everyone AS e
)
SELECT mnemo_may(mm.role, 'read') AS allowed, msg.seq, msg.sender_id, k.recipients,
       k.read_count, k.delivered_count, p.user_id, p.role, p.read, p.delivered
  FROM conversation_members AS mm
  LEFT JOIN msg ON true
  LEFT JOIN counts AS k ON msg.seq IS NOT NULL
  LEFT JOIN LATERAL (
        SELECT e.user_id, e.role, e.read, e.delivered
          FROM everyone AS e
         WHERE e.user_id > $4
         ORDER BY e.user_id
         LIMIT $5
       ) AS p ON true
 WHERE mm.conversation_id = $2
   AND mm.user_id = $1
 ORDER BY p.user_id;

-- name: list_message_deliveries
-- The delivery status of a page of messages after seq $3 (by seq, $4 rows: the gateway asks
-- one more than it shows): per message, its recipients (the members other than its sender
-- who had joined when it was written) and how many of them have read it and have it
-- delivered. The conversation's members are read once (a materialized CTE) and compared with
-- each message in memory. One row of NULL seq: a member and no message in the range. No
-- row: not a member.
-- returns: columns allowed, seq, id, sender_id, recipients, read_count, delivered_count
-- uses: conversation_members_pkey, messages_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 after_seq int8
-- $4 page_size int8             rows wanted + 1
WITH me AS (
    SELECT mnemo_may(mm.role, 'read') AS allowed
      FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), members AS MATERIALIZED (
    SELECT rm.user_id, rm.last_read_seq, rm.delivered_seq, rm.joined_at
      FROM conversation_members AS rm
     WHERE rm.conversation_id = $2
       AND (SELECT allowed FROM me)
), page AS (
    SELECT m.seq, m.id, m.sender_id, m.created_at
      FROM messages AS m
     WHERE m.conversation_id = $2
       AND m.seq > $3
       AND (SELECT allowed FROM me)
     ORDER BY m.seq
     LIMIT $4
)
SELECT me.allowed, p.seq, p.id, p.sender_id, s.recipients, s.read_count, s.delivered_count
  FROM me
  LEFT JOIN page AS p ON true
  LEFT JOIN LATERAL (
        SELECT count(*) AS recipients,
               count(*) FILTER (WHERE b.last_read_seq >= p.seq) AS read_count,
               count(*) FILTER (WHERE b.delivered_seq >= p.seq) AS delivered_count
          FROM members AS b
         WHERE b.user_id IS DISTINCT FROM p.sender_id
           AND b.joined_at <= p.created_at
       ) AS s ON p.seq IS NOT NULL
 ORDER BY p.seq;

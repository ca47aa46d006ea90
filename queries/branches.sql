-- Branches of a conversation (README "Branches"): every message follows a parent (parent_seq,
-- the previous message of its branch; NULL for a first message), so the messages form a tree;
-- the conversation's active leaf (conversations.leaf_seq) picks one path from a root, whose
-- messages are marked active. Along any path a child's seq is above its parent's, so a path
-- sorted by seq is the branch in order. Every query is scoped by the caller ($1 user_id): a
-- non-member finds nothing; a member whose role lacks the right is told so.

-- name: get_branch_lock
-- Lock the conversation's row for a change of its active branch (a switch, or an append that
-- forks): appends lock the same row, so they and switches run one at a time, and the
-- statements that follow in the transaction see every message committed before. Whether
-- the caller's role may switch_branch, the seq of message $3 (NULL when $3 is NULL or names
-- no message of the conversation), and whether a message of id $4 is already stored (a
-- retried append). No row: missing, or the caller is not a member.
-- returns: columns allowed, target_seq, stored
-- uses: conversations_pkey, conversation_members_pkey, messages_conversation_id_id_key
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 message_id uuid            NULL: none
-- $4 draft_id uuid              NULL: none
SELECT mnemo_may(mm.role, 'switch_branch') AS allowed,
       (SELECT m.seq
          FROM messages AS m
         WHERE m.conversation_id = c.id
           AND m.id = $3) AS target_seq,
       EXISTS (SELECT 1
                 FROM messages AS d
                WHERE d.conversation_id = c.id
                  AND d.id = $4) AS stored
  FROM conversations AS c
  JOIN conversation_members AS mm ON mm.conversation_id = c.id AND mm.user_id = $1
 WHERE c.id = $2
   FOR UPDATE OF c;

-- name: update_active_leaf
-- Make the path to message $3 the active branch, in one statement; run it after
-- get_branch_lock in the same transaction (this statement's snapshot then holds every
-- message: nothing can be appended meanwhile). The new leaf is $3 itself, or with $4 the
-- newest message below it on any branch (the last one written there: a sibling made active
-- shows its branch as it was left), found by walking every message below $3 (its subtree,
-- by messages_parent_idx). $3 NULL: the empty path (no message is active; the next append
-- starts a new first message).
-- Then, walking up from the new leaf to the first message already active (the fork point;
-- none when the new path shares no message with the old), the messages walked become active,
-- and the active messages after the fork point (the old path's tail: the active messages are
-- one path, so every active one after the fork is on it) become inactive (found by
-- messages_active_idx). The cost is the length of the two diverging segments, plus the
-- subtree below $3 with $4: index lookups, no scan.
-- Nothing changes, and allowed is false, if the caller's role may not switch_branch; no row
-- if the caller is not a member or $3 names no message of the conversation.
-- returns: columns allowed, leaf_seq, fork_seq, activated, deactivated
-- uses: conversation_members_pkey, messages_conversation_id_id_key, messages_parent_idx
-- uses: messages_pkey, messages_active_idx
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 message_id uuid            NULL: the empty path
-- $4 descend bool               the leaf is the newest message below $3
WITH RECURSIVE member AS (
    SELECT mnemo_may(mm.role, 'switch_branch') AS allowed
      FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), target AS (
    SELECT m.seq
      FROM messages AS m, member AS mb
     WHERE m.conversation_id = $2
       AND m.id = $3
       AND mb.allowed
), down (seq) AS (
    -- $3 and, with $4, every message below it on any branch (one level per step)
    SELECT t.seq
      FROM target AS t
     UNION ALL
    SELECT k.seq
      FROM down AS d
      JOIN messages AS k ON k.conversation_id = $2 AND k.parent_seq = d.seq
     WHERE $4
), leaf AS (
    -- the newest of them: the last message written below $3
    SELECT max(d.seq) AS seq
      FROM down AS d
    HAVING count(*) > 0
), up (seq, parent_seq, active) AS (
    SELECT m.seq, m.parent_seq, m.active
      FROM messages AS m, leaf AS l
     WHERE m.conversation_id = $2
       AND m.seq = l.seq
     UNION ALL
    SELECT p.seq, p.parent_seq, p.active
      FROM up AS u
      JOIN messages AS p ON p.conversation_id = $2 AND p.seq = u.parent_seq
     WHERE NOT u.active
), go AS (
    -- the switch goes ahead: an allowed caller, and a message found (or the empty path)
    SELECT coalesce((SELECT max(u.seq) FROM up AS u WHERE u.active), 0) AS fork_seq,
           (SELECT l.seq FROM leaf AS l) AS leaf_seq
      FROM member AS mb
     WHERE mb.allowed
       AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM leaf))
), deactivated AS (
    UPDATE messages AS m
       SET active = false
      FROM go AS g
     WHERE m.conversation_id = $2
       AND m.active
       AND m.seq > g.fork_seq
    RETURNING m.seq
), activated AS (
    UPDATE messages AS m
       SET active = true
      FROM up AS u
     WHERE m.conversation_id = $2
       AND m.seq = u.seq
       AND NOT u.active
    RETURNING m.seq
), conv AS (
    UPDATE conversations AS c
       SET leaf_seq = g.leaf_seq
      FROM go AS g
     WHERE c.id = $2
)
SELECT mb.allowed, g.leaf_seq, g.fork_seq,
       (SELECT count(*) FROM activated)::int8 AS activated,
       (SELECT count(*) FROM deactivated)::int8 AS deactivated
  FROM member AS mb
  LEFT JOIN go AS g ON true
 WHERE NOT mb.allowed
    OR g.fork_seq IS NOT NULL;

-- name: list_message_siblings
-- The siblings of message $3 (the children of its parent, itself included; for a first
-- message, the first messages), oldest first, after seq $4, at most $5 rows: each with
-- whether it is on the active branch. One row with NULL columns: none after $4. No row: the
-- message is missing, or the caller is not a member who may read. The first messages are
-- looked up apart (parent_seq IS NULL), so that both lookups are index conditions of
-- messages_parent_idx.
-- returns: Message + active
-- uses: conversation_members_pkey, messages_conversation_id_id_key, messages_parent_idx
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 message_id uuid
-- $4 after_seq int8             0 for the first page
-- $5 page_size int8             rows wanted + 1
WITH x AS (
    SELECT m.parent_seq
      FROM messages AS m
      JOIN conversation_members AS mm ON mm.conversation_id = m.conversation_id
                                     AND mm.user_id = $1
     WHERE m.conversation_id = $2
       AND m.id = $3
       AND mnemo_may(mm.role, 'read')
)
SELECT s.id, s.conversation_id, s.seq, s.role, s.parts, s.content, s.metadata, s.status,
       s.sender_id, s.reply_to, s.parent_seq, s.session_no, s.integrity, s.feedback_up,
       s.feedback_down, s.edited_at, s.retracted_at, s.created_at, s.updated_at, s.active
  FROM x
  LEFT JOIN LATERAL (
        SELECT k.id, k.conversation_id, k.seq, k.role, k.parts, k.content, k.metadata,
               k.status, k.sender_id, k.reply_to, k.parent_seq, k.session_no, k.integrity,
               k.feedback_up, k.feedback_down, k.edited_at, k.retracted_at, k.created_at,
               k.updated_at, k.active
          FROM messages AS k
         WHERE k.conversation_id = $2
           AND k.parent_seq = x.parent_seq
           AND k.seq > $4
         UNION ALL
        SELECT k.id, k.conversation_id, k.seq, k.role, k.parts, k.content, k.metadata,
               k.status, k.sender_id, k.reply_to, k.parent_seq, k.session_no, k.integrity,
               k.feedback_up, k.feedback_down, k.edited_at, k.retracted_at, k.created_at,
               k.updated_at, k.active
          FROM messages AS k
         WHERE x.parent_seq IS NULL
           AND k.conversation_id = $2
           AND k.parent_seq IS NULL
           AND k.seq > $4
         ORDER BY seq
         LIMIT $5
       ) AS s ON true
 ORDER BY s.seq;

-- name: list_branch_messages
-- A page of the branch that ends at message $3 (any message: the leaf of an old branch, or of
-- the active one), returned oldest first: the path from $3 up (or, with $4, from the parent
-- of message seq $4, which should be on that path: the first seq of the page before), walked
-- by messages_pkey one parent at a time and never more than $5 messages: a page costs its
-- rows, however deep it lies. Same page conventions as list_messages_before: ends at $5 - 1
-- rows or $6 bytes, holds at least one message; the first row after the page comes back with
-- NULL parts, content and metadata (only to say that more exist); one row with NULL message
-- columns means the page is empty (the start has no parent). No row: message $3 (or seq $4)
-- is missing, or the caller is not a member who may read.
-- returns: Message
-- uses: conversation_members_pkey, messages_conversation_id_id_key, messages_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 leaf_id uuid
-- $4 before_seq int8            NULL for the first page (from the leaf itself)
-- $5 page_size int8             rows wanted + 1
-- $6 max_bytes int8             APP_MAX_PAGE_BYTES
WITH RECURSIVE start AS (
    SELECT CASE WHEN $4::int8 IS NULL THEN l.seq ELSE b.parent_seq END AS seq
      FROM messages AS l
      JOIN conversation_members AS mm ON mm.conversation_id = l.conversation_id
                                     AND mm.user_id = $1
      LEFT JOIN messages AS b ON b.conversation_id = l.conversation_id AND b.seq = $4
     WHERE l.conversation_id = $2
       AND l.id = $3
       AND mnemo_may(mm.role, 'read')
       AND ($4::int8 IS NULL OR b.seq IS NOT NULL)
), walk (seq, parent_seq, n) AS (
    SELECT m.seq, m.parent_seq, 1::int8
      FROM start AS s
      JOIN messages AS m ON m.conversation_id = $2 AND m.seq = s.seq
     UNION ALL
    SELECT p.seq, p.parent_seq, w.n + 1
      FROM walk AS w
      JOIN messages AS p ON p.conversation_id = $2 AND p.seq = w.parent_seq
     WHERE w.n < $5
)
SELECT m.id, m.conversation_id, m.seq, m.role, m.parts, m.content, m.metadata, m.status,
       m.sender_id, m.reply_to, m.parent_seq, m.session_no, m.integrity, m.feedback_up,
       m.feedback_down, m.edited_at, m.retracted_at, m.created_at, m.updated_at
  FROM start AS s
  LEFT JOIN LATERAL (
        SELECT r.id, r.conversation_id, r.seq, r.role,
               CASE WHEN r.in_page THEN r.parts END AS parts,
               CASE WHEN r.in_page THEN r.content END AS content,
               CASE WHEN r.in_page THEN r.metadata END AS metadata,
               r.status, r.sender_id, r.reply_to, r.parent_seq, r.session_no, r.integrity,
               r.feedback_up, r.feedback_down, r.edited_at, r.retracted_at, r.created_at,
               r.updated_at
          FROM (
                SELECT t.id, t.conversation_id, t.seq, t.role, t.parts, t.content, t.metadata,
                       t.status, t.sender_id, t.reply_to, t.parent_seq, t.session_no,
                       t.integrity, t.feedback_up, t.feedback_down, t.edited_at,
                       t.retracted_at, t.created_at, t.updated_at, t.n, t.bytes, t.own_bytes,
                       t.n < $5 AND (t.n = 1 OR t.bytes <= $6) AS in_page
                  FROM (
                        SELECT k.id, k.conversation_id, k.seq, k.role, k.parts, k.content,
                               k.metadata, k.status, k.sender_id, k.reply_to, k.parent_seq,
                               k.session_no, k.integrity, k.feedback_up, k.feedback_down,
                               k.edited_at, k.retracted_at, k.created_at, k.updated_at, w.n,
                               (sum(mnemo_message_bytes(k.parts_bytes, k.content,
                                                        k.metadata_bytes))
                                   OVER travel)::int8 AS bytes,
                               mnemo_message_bytes(k.parts_bytes, k.content, k.metadata_bytes)
                                   AS own_bytes
                          FROM walk AS w
                          JOIN messages AS k ON k.conversation_id = $2 AND k.seq = w.seq
                        WINDOW travel AS (ORDER BY w.n ROWS UNBOUNDED PRECEDING)
                       ) AS t
               ) AS r
         -- the page, and the first row after it (the one before it is in the page)
         WHERE r.n <= 2 OR r.bytes - r.own_bytes <= $6
       ) AS m ON true
 ORDER BY m.seq;

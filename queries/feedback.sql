-- Feedback on messages: a member's rating (up or down), optional score and comment; one row
-- per (message, member). Every query is scoped by membership ($1 user_id, $2 conversation_id):
-- a non-member gets no row at all (NotFound), a member whose role lacks the right gets a row
-- with allowed = false and nothing changed (NotPermitted). Setting and withdrawing need the
-- 'feedback' right, reading it needs 'read' (conversation_rights, through mnemo_may).
-- messages.feedback_up / feedback_down count a message's feedback; they change in the very
-- statement that changes the feedback, by the difference between the row written or deleted
-- and the row it replaced, so concurrent changes by many members add up exactly.

-- name: upsert_feedback
-- Set the caller's feedback on a message (replacing any they gave before), in one statement,
-- and move the message's counters by what changed. The caller's earlier row is locked and read
-- as it is now (SELECT FOR UPDATE returns the newest committed version, whatever committed
-- since the statement began), so the counters move from the rating actually replaced, and two
-- concurrent changes of one member queue on that row. Counters change with `feedback_up =
-- feedback_up + d`, which an UPDATE re-reads on the newest version of the message's row: many
-- members at once never lose a change. The message's row is written only when the rating
-- changes (a new score or comment leaves it alone).
-- When no earlier row is visible but one committed meanwhile (the caller's concurrent first
-- feedback), the insert does nothing (ON CONFLICT DO NOTHING: no error, a caller's transaction
-- stays usable) and created is NULL: the gateway runs the statement once more, which sees it.
-- No row: not a member. allowed = false: no 'feedback' right. seq NULL: no such message.
-- retracted: the message was retracted (feedback on it is refused; nothing changes).
-- returns: Feedback + allowed, retracted, created
-- uses: conversation_members_pkey, messages_conversation_id_id_key, message_feedback_pkey, messages_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 message_id uuid
-- $4 rating text
-- $5 score float8               NULL: none
-- $6 comment text               NULL: none
WITH target AS (
    SELECT mnemo_may(mm.role, 'feedback') AS allowed,
           m.id AS message_id,
           m.seq,
           m.retracted_at IS NOT NULL AS retracted
      FROM conversation_members AS mm
      LEFT JOIN messages AS m
        ON m.conversation_id = mm.conversation_id
       AND m.id = $3
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), writable AS (
    SELECT t.seq
      FROM target AS t
     WHERE t.allowed
       AND t.seq IS NOT NULL
       AND NOT t.retracted
), previous AS (
    SELECT f.conversation_id, f.seq, f.user_id, f.rating
      FROM message_feedback AS f
      JOIN writable AS w ON w.seq = f.seq
     WHERE f.conversation_id = $2
       AND f.user_id = $1
       FOR UPDATE OF f
), updated AS (
    UPDATE message_feedback AS f
       SET rating = $4::text,
           score = $5::float8,
           comment = $6::text,
           updated_at = now()
      FROM previous AS p
     WHERE f.conversation_id = p.conversation_id
       AND f.seq = p.seq
       AND f.user_id = p.user_id
    RETURNING f.conversation_id, f.seq, f.user_id, f.rating, f.score, f.comment, f.created_at,
              f.updated_at, p.rating AS previous_rating, false AS created
), inserted AS (
    INSERT INTO message_feedback (conversation_id, seq, user_id, rating, score, comment)
    SELECT $2, w.seq, $1, $4::text, $5::float8, $6::text
      FROM writable AS w
     WHERE NOT EXISTS (SELECT 1 FROM previous)
        ON CONFLICT (conversation_id, seq, user_id) DO NOTHING
    RETURNING conversation_id, seq, user_id, rating, score, comment, created_at, updated_at,
              NULL::text AS previous_rating, true AS created
), changed AS (
    SELECT conversation_id, seq, user_id, rating, score, comment, created_at, updated_at,
           previous_rating, created
      FROM updated
     UNION ALL
    SELECT conversation_id, seq, user_id, rating, score, comment, created_at, updated_at,
           previous_rating, created
      FROM inserted
), counted AS (
    UPDATE messages AS m
       SET feedback_up = m.feedback_up + (c.rating = 'up')::int
                         - (c.previous_rating IS NOT DISTINCT FROM 'up')::int,
           feedback_down = m.feedback_down + (c.rating = 'down')::int
                           - (c.previous_rating IS NOT DISTINCT FROM 'down')::int
      FROM changed AS c
     WHERE m.conversation_id = c.conversation_id
       AND m.seq = c.seq
       AND c.rating IS DISTINCT FROM c.previous_rating
)
SELECT c.conversation_id, t.message_id, t.seq, c.user_id, c.rating, c.score, c.comment,
       c.created_at, c.updated_at, t.allowed, t.retracted, c.created
  FROM target AS t
  LEFT JOIN changed AS c ON true;

-- name: delete_feedback
-- Withdraw the caller's feedback on a message and move the message's counters back, in one
-- statement. The DELETE removes the newest committed version of the row (it waits for a
-- concurrent change of it) and returns that version's rating, so the counters lose exactly
-- what was counted.
-- No row: not a member. allowed = false: no 'feedback' right. seq NULL: no such message.
-- rating NULL: the caller had no feedback on it.
-- returns: columns allowed, seq, rating
-- uses: conversation_members_pkey, messages_conversation_id_id_key, message_feedback_pkey, messages_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 message_id uuid
WITH target AS (
    SELECT mnemo_may(mm.role, 'feedback') AS allowed,
           m.seq
      FROM conversation_members AS mm
      LEFT JOIN messages AS m
        ON m.conversation_id = mm.conversation_id
       AND m.id = $3
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), deleted AS (
    DELETE FROM message_feedback AS f
     USING target AS t
     WHERE f.conversation_id = $2
       AND f.seq = t.seq
       AND f.user_id = $1
       AND t.allowed
    RETURNING f.seq, f.rating
), counted AS (
    UPDATE messages AS m
       SET feedback_up = m.feedback_up - (d.rating = 'up')::int,
           feedback_down = m.feedback_down - (d.rating = 'down')::int
      FROM deleted AS d
     WHERE m.conversation_id = $2
       AND m.seq = d.seq
)
SELECT t.allowed, t.seq, d.rating
  FROM target AS t
  LEFT JOIN deleted AS d ON true;

-- name: get_feedback
-- The caller's own feedback on a message. No row: not a member. allowed = false: no 'read'
-- right (nothing else is read). message_id NULL: no such message. rating NULL: the caller
-- gave no feedback on it.
-- returns: Feedback + allowed
-- uses: conversation_members_pkey, messages_conversation_id_id_key, message_feedback_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 message_id uuid
SELECT f.conversation_id, m.id AS message_id, m.seq, f.user_id, f.rating, f.score, f.comment,
       f.created_at, f.updated_at, mnemo_may(mm.role, 'read') AS allowed
  FROM conversation_members AS mm
  LEFT JOIN messages AS m
    ON m.conversation_id = mm.conversation_id
   AND m.id = $3
   AND mnemo_may(mm.role, 'read')
  LEFT JOIN message_feedback AS f
    ON f.conversation_id = m.conversation_id
   AND f.seq = m.seq
   AND f.user_id = mm.user_id
 WHERE mm.conversation_id = $2
   AND mm.user_id = $1;

-- name: list_feedback
-- A page of a conversation's feedback, every member's, by message (seq) then user, after the
-- keyset ($3, $4) of the previous page's last row ((0, the nil uuid) for the first page);
-- only ratings $5 when given. The keyset is an index condition of message_feedback_pkey
-- (conversation_id, seq, user_id), which also gives the order (the outer ORDER BY sorts only
-- the page): a page reads its rows and no more. The rating filter is a filter on that scan (no index of its own: a conversation's
-- feedback is read by moderators and dashboards, not on a hot path).
-- One row with NULL feedback columns: nothing (more) to list. No row: not a member.
-- allowed = false: no 'read' right (nothing is read).
-- returns: Feedback + allowed
-- uses: conversation_members_pkey, message_feedback_pkey, messages_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 after_seq int8
-- $4 after_user_id uuid
-- $5 rating text                NULL: up and down
-- $6 page_size int8             rows wanted + 1
SELECT f.conversation_id, f.message_id, f.seq, f.user_id, f.rating, f.score, f.comment,
       f.created_at, f.updated_at, mnemo_may(mm.role, 'read') AS allowed
  FROM conversation_members AS mm
  LEFT JOIN LATERAL (
        SELECT fb.conversation_id,
               -- per row, by messages_pkey: a join could merge with the conversation's
               -- messages read from its first seq, however far the cursor is
               (SELECT m.id
                  FROM messages AS m
                 WHERE m.conversation_id = fb.conversation_id
                   AND m.seq = fb.seq) AS message_id,
               fb.seq, fb.user_id, fb.rating, fb.score, fb.comment, fb.created_at, fb.updated_at
          FROM message_feedback AS fb
         WHERE fb.conversation_id = mm.conversation_id
           AND (fb.seq, fb.user_id) > ($3::int8, $4::uuid)
           AND ($5::text IS NULL OR fb.rating = $5::text)
           AND mnemo_may(mm.role, 'read')
         ORDER BY fb.seq, fb.user_id
         LIMIT $6
       ) AS f ON true
 WHERE mm.conversation_id = $2
   AND mm.user_id = $1
 ORDER BY f.seq, f.user_id;

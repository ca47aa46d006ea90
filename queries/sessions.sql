-- Chat sessions of a conversation (README "Chat sessions"). insert_message (messages.sql)
-- starts and extends them; these read them and end one. Scoped by the caller ($1 user_id):
-- a non-member finds nothing; a member whose role may not end a session is told so.
-- A session that timed out has no ended_at stored: it is derived, its last activity plus the
-- timeout ($3 seconds), once that moment has passed.

-- name: list_sessions_before
-- A page of a conversation's sessions, newest first, with session_no below $4 (a large $4 for
-- the first page). One row with NULL session columns: the caller may read the conversation
-- but no session is in the range; no row at all: missing or not a member.
-- returns: ChatSession
-- uses: conversation_members_pkey, conversations_pkey, chat_sessions_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 session_timeout float8      APP_SESSION_TIMEOUT_SECONDS
-- $4 before_no int8
-- $5 page_size int8
SELECT s.session_no, s.started_at, s.last_activity_at, s.ended_at, s.first_seq, s.last_seq,
       s.message_count, s.open
  FROM conversation_members AS mm
  JOIN conversations AS c ON c.id = mm.conversation_id
  LEFT JOIN LATERAL (
        SELECT cs.session_no, cs.started_at, f.last_activity_at,
               coalesce(cs.ended_at,
                        CASE WHEN f.last_activity_at < now() - make_interval(secs => $3)
                             THEN f.last_activity_at + make_interval(secs => $3) END)
                   AS ended_at,
               cs.first_seq, f.last_seq, f.message_count,
               cs.ended_at IS NULL
               AND f.last_activity_at >= now() - make_interval(secs => $3) AS open
          FROM chat_sessions AS cs
         CROSS JOIN LATERAL (
               -- The current session's figures are the conversation's (insert_message).
               SELECT CASE WHEN cs.session_no = c.session_no THEN c.session_active_at
                           ELSE cs.last_activity_at END AS last_activity_at,
                      CASE WHEN cs.session_no = c.session_no THEN c.last_seq
                           ELSE cs.last_seq END AS last_seq,
                      CASE WHEN cs.session_no = c.session_no
                           THEN (c.last_seq - cs.first_seq + 1)::int4
                           ELSE cs.message_count END AS message_count) AS f
         WHERE cs.conversation_id = $2
           AND cs.session_no < $4::int8
         ORDER BY cs.session_no DESC
         LIMIT $5) AS s ON true
 WHERE mm.conversation_id = $2
   AND mm.user_id = $1
   AND mnemo_may(mm.role, 'read')
 ORDER BY s.session_no DESC;

-- name: list_sessions_after
-- A page of a conversation's sessions, oldest first, with session_no above $4 (0 for the
-- first page). Rows as list_sessions_before's.
-- returns: ChatSession
-- uses: conversation_members_pkey, conversations_pkey, chat_sessions_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 session_timeout float8      APP_SESSION_TIMEOUT_SECONDS
-- $4 after_no int8
-- $5 page_size int8
SELECT s.session_no, s.started_at, s.last_activity_at, s.ended_at, s.first_seq, s.last_seq,
       s.message_count, s.open
  FROM conversation_members AS mm
  JOIN conversations AS c ON c.id = mm.conversation_id
  LEFT JOIN LATERAL (
        SELECT cs.session_no, cs.started_at, f.last_activity_at,
               coalesce(cs.ended_at,
                        CASE WHEN f.last_activity_at < now() - make_interval(secs => $3)
                             THEN f.last_activity_at + make_interval(secs => $3) END)
                   AS ended_at,
               cs.first_seq, f.last_seq, f.message_count,
               cs.ended_at IS NULL
               AND f.last_activity_at >= now() - make_interval(secs => $3) AS open
          FROM chat_sessions AS cs
         CROSS JOIN LATERAL (
               -- The current session's figures are the conversation's (insert_message).
               SELECT CASE WHEN cs.session_no = c.session_no THEN c.session_active_at
                           ELSE cs.last_activity_at END AS last_activity_at,
                      CASE WHEN cs.session_no = c.session_no THEN c.last_seq
                           ELSE cs.last_seq END AS last_seq,
                      CASE WHEN cs.session_no = c.session_no
                           THEN (c.last_seq - cs.first_seq + 1)::int4
                           ELSE cs.message_count END AS message_count) AS f
         WHERE cs.conversation_id = $2
           AND cs.session_no > $4::int8
         ORDER BY cs.session_no
         LIMIT $5) AS s ON true
 WHERE mm.conversation_id = $2
   AND mm.user_id = $1
   AND mnemo_may(mm.role, 'read')
 ORDER BY s.session_no;

-- name: update_session_end
-- End the conversation's current session now: the next message starts a new one. A session
-- that already ended (or timed out) keeps its end. The caller's role must have 'end_session'
-- (allowed false, nothing changed, otherwise). The conversation's row is updated first, so
-- this waits for an append in progress and ends the session that append left (its
-- chat_sessions row, committed meanwhile, is reached by the conflict of the upsert, which
-- sees it where the statement's snapshot would not). Session columns NULL: no session yet.
-- No row: missing or not a member.
-- returns: ChatSession + allowed
-- uses: conversation_members_pkey, conversations_pkey, chat_sessions_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 session_timeout float8      APP_SESSION_TIMEOUT_SECONDS
WITH member AS (
    SELECT mnemo_may(mm.role, 'end_session') AS allowed
      FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), conv AS (
    UPDATE conversations AS c
       SET session_ended = true
      FROM member AS mb
     WHERE c.id = $2
       AND mb.allowed
       AND c.session_no > 0
    RETURNING c.id, c.session_no, c.session_active_at, c.last_seq
), ended AS (
    -- Its final figures too (while it went on they were the conversation's).
    INSERT INTO chat_sessions AS cs (conversation_id, session_no, ended_at, last_activity_at,
                                     last_seq)
    SELECT cv.id, cv.session_no, now(), cv.session_active_at, cv.last_seq
      FROM conv AS cv
        ON CONFLICT (conversation_id, session_no) DO UPDATE
       SET ended_at = coalesce(cs.ended_at,
                               least(now(),
                                     excluded.last_activity_at + make_interval(secs => $3))),
           last_activity_at = excluded.last_activity_at,
           last_seq = excluded.last_seq,
           message_count = excluded.last_seq - cs.first_seq + 1
    RETURNING cs.session_no, cs.started_at, cs.last_activity_at, cs.ended_at, cs.first_seq,
              cs.last_seq, cs.message_count
)
SELECT e.session_no, e.started_at, e.last_activity_at, e.ended_at, e.first_seq, e.last_seq,
       e.message_count, CASE WHEN e.session_no IS NOT NULL THEN false END AS open, mb.allowed
  FROM member AS mb
  LEFT JOIN ended AS e ON true;

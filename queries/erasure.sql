-- Erasing a user (README "Erasing a user"; the order and the loops are
-- dal/usecases/erasure.py's). Every statement does one bounded batch for one user ($1) and
-- returns what it did: the use case calls it again until it does nothing, so an erasure cut
-- short and run again finishes. The user is deactivated first (users.deactivate_user): their
-- tokens stop working, so nothing new of theirs arrives meanwhile.
-- Their rows in conversations someone else owns are anonymized rather than deleted, so that
-- the others' history stays whole: their messages become tombstones (as a retraction leaves
-- them) with no sender, the membership-change messages that name them name null instead,
-- and the event log's payloads that name them lose the id (and the parts they streamed).

-- name: delete_erasure_feedback
-- One batch of the user's feedback on any message, the messages' counters moved back by it
-- (as withdrawing does).
-- returns: value
-- uses: message_feedback_user_idx (both the batch and its delete), messages_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH doomed AS (
    SELECT f.conversation_id, f.seq
      FROM message_feedback AS f
     WHERE f.user_id = $1
     ORDER BY f.conversation_id, f.seq
     LIMIT $2
       FOR UPDATE
), gone AS (
    DELETE FROM message_feedback AS f
     USING doomed AS d
     WHERE f.conversation_id = d.conversation_id
       AND f.seq = d.seq
       AND f.user_id = $1
    RETURNING f.conversation_id, f.seq, f.rating
), counted AS (
    UPDATE messages AS m
       SET feedback_up = m.feedback_up - g.up,
           feedback_down = m.feedback_down - g.down
      FROM (SELECT conversation_id, seq,
                   count(*) FILTER (WHERE rating = 'up') AS up,
                   count(*) FILTER (WHERE rating = 'down') AS down
              FROM gone
             GROUP BY conversation_id, seq) AS g
     WHERE m.conversation_id = g.conversation_id
       AND m.seq = g.seq
)
SELECT count(*)
  FROM gone;

-- name: list_erasure_shared_conversations
-- Conversations someone else owns that still hold something of the user's: their membership,
-- or messages they sent (at most $2 of each kind; the same conversation may come from both).
-- returns: columns conversation_id
-- uses: conversation_members_user_idx, conversations_pkey, messages_sender_idx
-- $1 user_id uuid
-- $2 limit int8
(SELECT mm.conversation_id
   FROM conversation_members AS mm
   JOIN conversations AS c ON c.id = mm.conversation_id
  WHERE mm.user_id = $1
    AND c.user_id <> $1
  LIMIT $2)
UNION
(SELECT m.conversation_id
   FROM messages AS m
  WHERE m.sender_id = $1
    AND m.sender_id <> m.user_id
  LIMIT $2);

-- name: update_erasure_events
-- Anonymize the events of a conversation with seq in ($3, $3 + $4] (one window of the log,
-- read by its key) whose payload names the user: an event about a message of theirs loses
-- its parts (what they streamed), then every "<user id>" string becomes null (a payload that
-- would still hold the id some other way is emptied). Returns how many changed and the
-- conversation's newest event seq (where the windows end).
-- returns: columns scrubbed, last_event_seq
-- uses: conversation_events_pkey, conversations_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 after_seq int8
-- $4 batch int8
WITH doomed AS (
    SELECT e.conversation_id, e.seq,
           replace((CASE WHEN e.payload ->> 'sender_id' = $1::uuid::text
                         THEN e.payload - 'parts'
                         ELSE e.payload END)::text,
                   '"' || $1::uuid::text || '"', 'null') AS payload
      FROM conversation_events AS e
     WHERE e.conversation_id = $2
       AND e.seq > $3
       AND e.seq <= $3 + $4
       AND strpos(e.payload::text, $1::uuid::text) > 0
       FOR UPDATE
), scrubbed AS (
    UPDATE conversation_events AS e
       SET payload = CASE WHEN strpos(d.payload, $1::uuid::text) > 0 THEN '{}'::jsonb
                          ELSE d.payload::jsonb END
      FROM doomed AS d
     WHERE e.conversation_id = d.conversation_id
       AND e.seq = d.seq
    RETURNING 1
)
SELECT (SELECT count(*) FROM scrubbed) AS scrubbed,
       coalesce((SELECT c.last_event_seq FROM conversations AS c WHERE c.id = $2), 0)
           AS last_event_seq;

-- name: update_erasure_messages
-- One batch of the user's messages in a conversation someone else owns. Each becomes a
-- tombstone as a retraction leaves it (parts, content, metadata emptied; earlier versions and
-- file references deleted; retracted_at set) with sender_id and retracted_by NULL: a
-- tombstone no one wrote is an erased user's. A system message they sent (a membership
-- change they made) keeps its parts, only its sender goes. The message keeps its id, seq and
-- place on its branch, so replies and branches stay whole.
-- returns: value
-- uses: messages_sender_idx, messages_pkey, message_versions_pkey, message_attachments_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 batch int8
WITH target AS (
    SELECT m.conversation_id, m.seq, m.role = 'system' AS system
      FROM messages AS m
     WHERE m.sender_id = $1
       AND m.sender_id <> m.user_id
       AND m.conversation_id = $2
     ORDER BY m.seq
     LIMIT $3
       FOR UPDATE
), versions AS (
    DELETE FROM message_versions AS v
     USING target AS t
     WHERE v.conversation_id = t.conversation_id
       AND v.seq = t.seq
       AND NOT t.system
), unreferenced AS (
    DELETE FROM message_attachments AS r
     USING target AS t
     WHERE r.conversation_id = t.conversation_id
       AND r.seq = t.seq
       AND NOT t.system
), updated AS (
    UPDATE messages AS m
       SET parts = CASE WHEN t.system THEN m.parts ELSE '[]'::jsonb END,
           content = CASE WHEN t.system THEN m.content ELSE '' END,
           parts_bytes = CASE WHEN t.system THEN m.parts_bytes ELSE 0 END,
           parts_count = CASE WHEN t.system THEN m.parts_count ELSE 0 END,
           metadata = CASE WHEN t.system THEN m.metadata ELSE '{}'::jsonb END,
           metadata_bytes = CASE WHEN t.system THEN m.metadata_bytes
                                 ELSE octet_length('{}'::jsonb::text) END,
           status = 'complete',
           draft_digest = NULL,
           retracted_at = CASE WHEN t.system THEN m.retracted_at
                               ELSE coalesce(m.retracted_at, now()) END,
           retracted_by = NULL,
           sender_id = NULL,
           updated_at = now()
      FROM target AS t
     WHERE m.conversation_id = t.conversation_id
       AND m.seq = t.seq
    RETURNING 1
)
SELECT count(*)
  FROM updated;

-- name: delete_erasure_membership
-- The user's membership of a conversation someone else owns (and with it their read
-- position), the conversation's member_count moved by it. No system message is written: it
-- would name them.
-- returns: value
-- uses: conversation_members_pkey, conversations_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
WITH gone AS (
    DELETE FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
       AND mm.role <> 'owner'
    RETURNING mm.conversation_id
), counted AS (
    UPDATE conversations AS c
       SET member_count = c.member_count - 1
      FROM gone AS g
     WHERE c.id = g.conversation_id
)
SELECT count(*)
  FROM gone;

-- name: update_erasure_mentions
-- One batch of the system messages whose data-member parts name the user (as the member
-- changed, or as who changed it): every "<user id>" string in their parts becomes null.
-- returns: value
-- uses: messages_member_parts_idx, messages_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH target AS (
    SELECT m.conversation_id, m.seq,
           replace(m.parts::text, '"' || $1::uuid::text || '"', 'null')::jsonb AS parts
      FROM messages AS m
     WHERE m.role = 'system'
       AND (m.parts @> jsonb_build_array(jsonb_build_object(
                'data', jsonb_build_object('user_id', $1::uuid::text)))
            OR m.parts @> jsonb_build_array(jsonb_build_object(
                'data', jsonb_build_object('by', $1::uuid::text))))
     LIMIT $2
       FOR UPDATE
), updated AS (
    UPDATE messages AS m
       SET parts = t.parts,
           parts_bytes = mnemo_parts_bytes(t.parts),
           draft_digest = NULL,
           updated_at = now()
      FROM target AS t
     WHERE m.conversation_id = t.conversation_id
       AND m.seq = t.seq
    RETURNING 1
)
SELECT count(*)
  FROM updated;

-- name: update_erasure_retracted_by
-- One batch of the messages the user deleted (as an owner, admin or moderator) in others'
-- conversations: who deleted them becomes NULL.
-- returns: value
-- uses: messages_retracted_by_idx, messages_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH target AS (
    SELECT m.conversation_id, m.seq
      FROM messages AS m
     WHERE m.retracted_by = $1
     LIMIT $2
       FOR UPDATE
), updated AS (
    UPDATE messages AS m
       SET retracted_by = NULL
      FROM target AS t
     WHERE m.conversation_id = t.conversation_id
       AND m.seq = t.seq
    RETURNING 1
)
SELECT count(*)
  FROM updated;

-- name: update_erasure_edited_by
-- One batch of the earlier message versions the user wrote by an edit: who wrote them
-- becomes NULL.
-- returns: value
-- uses: message_versions_edited_by_idx, message_versions_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH target AS (
    SELECT v.conversation_id, v.seq, v.version
      FROM message_versions AS v
     WHERE v.edited_by = $1
     LIMIT $2
       FOR UPDATE
), updated AS (
    UPDATE message_versions AS v
       SET edited_by = NULL
      FROM target AS t
     WHERE v.conversation_id = t.conversation_id
       AND v.seq = t.seq
       AND v.version = t.version
    RETURNING 1
)
SELECT count(*)
  FROM updated;

-- name: update_erasure_added_by
-- One batch of the memberships the user granted: who added the member becomes NULL.
-- returns: value
-- uses: conversation_members_added_by_idx, conversation_members_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH target AS (
    SELECT mm.conversation_id, mm.user_id
      FROM conversation_members AS mm
     WHERE mm.added_by = $1
     LIMIT $2
       FOR UPDATE
), updated AS (
    UPDATE conversation_members AS mm
       SET added_by = NULL
      FROM target AS t
     WHERE mm.conversation_id = t.conversation_id
       AND mm.user_id = t.user_id
    RETURNING 1
)
SELECT count(*)
  FROM updated;

-- name: list_erasure_owned_conversations
-- Up to $2 of the conversations the user owns (they go whole, the other members' messages in
-- them included).
-- returns: columns id
-- uses: conversations_user_updated_idx
-- $1 user_id uuid
-- $2 limit int8
SELECT c.id
  FROM conversations AS c
 WHERE c.user_id = $1
 ORDER BY c.updated_at DESC, c.id DESC
 LIMIT $2;

-- name: delete_erasure_conversation_messages
-- One batch of the messages of a conversation the user owns, newest first, with their
-- earlier versions, feedback and file references (each deleted message appends its
-- message.deleted event, as any deletion does: watchers see them go; the log goes next).
-- returns: columns messages, message_versions, message_feedback, message_attachments
-- uses: conversations_pkey, messages_pkey, message_versions_pkey, message_feedback_pkey
-- uses: message_attachments_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 batch int8
WITH doomed AS (
    SELECT m.conversation_id, m.seq
      FROM conversations AS c
      JOIN messages AS m ON m.conversation_id = c.id
     WHERE c.id = $2
       AND c.user_id = $1
     ORDER BY m.seq DESC
     LIMIT $3
       FOR UPDATE OF m
), versions AS (
    DELETE FROM message_versions AS v
     USING doomed AS d
     WHERE v.conversation_id = $2
       AND v.conversation_id = d.conversation_id
       AND v.seq = d.seq
    RETURNING 1
), feedback AS (
    DELETE FROM message_feedback AS f
     USING doomed AS d
     WHERE f.conversation_id = $2
       AND f.conversation_id = d.conversation_id
       AND f.seq = d.seq
    RETURNING 1
), refs AS (
    DELETE FROM message_attachments AS r
     USING doomed AS d
     WHERE r.conversation_id = $2
       AND r.conversation_id = d.conversation_id
       AND r.seq = d.seq
    RETURNING 1
), gone AS (
    DELETE FROM messages AS m
     USING doomed AS d
     WHERE m.conversation_id = $2
       AND m.conversation_id = d.conversation_id
       AND m.seq = d.seq
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS messages,
       (SELECT count(*) FROM versions) AS message_versions,
       (SELECT count(*) FROM feedback) AS message_feedback,
       (SELECT count(*) FROM refs) AS message_attachments;

-- name: delete_erasure_conversation_events
-- One batch of the event log of a conversation the user owns, oldest first.
-- returns: value
-- uses: conversations_pkey, conversation_events_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 batch int8
WITH doomed AS (
    SELECT e.conversation_id, e.seq
      FROM conversations AS c
      JOIN conversation_events AS e ON e.conversation_id = c.id
     WHERE c.id = $2
       AND c.user_id = $1
     ORDER BY e.seq
     LIMIT $3
       FOR UPDATE OF e
), gone AS (
    DELETE FROM conversation_events AS e
     USING doomed AS d
     WHERE e.conversation_id = d.conversation_id
       AND e.seq = d.seq
    RETURNING 1
)
SELECT count(*)
  FROM gone;

-- name: delete_erasure_conversation
-- A conversation the user owns, once its messages and log are gone: its members (their read
-- positions), chat sessions and tool-call pairs, then the row itself (what arrived since the
-- batches goes with it by the foreign keys' cascade). The others' tasks and snapshots linked
-- to it are unlinked by their foreign keys (ON DELETE SET NULL).
-- returns: columns conversations, conversation_members, chat_sessions, message_tool_calls
-- uses: conversations_pkey, conversation_members_pkey, chat_sessions_pkey
-- uses: message_tool_calls_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
WITH target AS (
    SELECT c.id
      FROM conversations AS c
     WHERE c.id = $2
       AND c.user_id = $1
       FOR UPDATE
), members AS (
    DELETE FROM conversation_members AS mm
     USING target AS t
     WHERE mm.conversation_id = t.id
    RETURNING 1
), sessions AS (
    DELETE FROM chat_sessions AS s
     USING target AS t
     WHERE s.conversation_id = t.id
    RETURNING 1
), tool_calls AS (
    DELETE FROM message_tool_calls AS k
     USING target AS t
     WHERE k.conversation_id = t.id
    RETURNING 1
), gone AS (
    DELETE FROM conversations AS c
     USING target AS t
     WHERE c.id = t.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS conversations,
       (SELECT count(*) FROM members) AS conversation_members,
       (SELECT count(*) FROM sessions) AS chat_sessions,
       (SELECT count(*) FROM tool_calls) AS message_tool_calls;

-- name: delete_erasure_snapshots
-- One batch of the user's workspace snapshots.
-- returns: value
-- uses: workspace_snapshots_user_created_idx
-- $1 user_id uuid
-- $2 batch int8
WITH gone AS (
    DELETE FROM workspace_snapshots AS s
     WHERE s.id = ANY (ARRAY(SELECT w.id
                               FROM workspace_snapshots AS w
                              WHERE w.user_id = $1
                              ORDER BY w.created_at DESC, w.id DESC
                              LIMIT $2))
       AND s.user_id = $1
    RETURNING 1
)
SELECT count(*)
  FROM gone;

-- name: delete_erasure_tasks
-- One batch of the user's tasks with their event logs (others' snapshots linked to them are
-- unlinked by the foreign key).
-- returns: columns tasks, task_events
-- uses: tasks_user_idx, tasks_pkey, task_events_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH doomed AS (
    SELECT t.id
      FROM tasks AS t
     WHERE t.user_id = $1
     ORDER BY t.id
     LIMIT $2
       FOR UPDATE
), events AS (
    DELETE FROM task_events AS e
     WHERE e.task_id = ANY (ARRAY(SELECT d.id FROM doomed AS d))
    RETURNING 1
), gone AS (
    DELETE FROM tasks AS t
     WHERE t.id = ANY (ARRAY(SELECT d.id FROM doomed AS d))
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS tasks,
       (SELECT count(*) FROM events) AS task_events;

-- name: delete_erasure_checkpoint_writes
-- One batch of the pending writes of the user's threads (found by the threads, then by key).
-- returns: value
-- uses: threads_user_updated_idx, checkpoint_writes_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH doomed AS (
    SELECT w.ctid AS row_id
      FROM threads AS t
      JOIN checkpoint_writes AS w ON w.thread_id = t.thread_id AND w.owner = t.owner
     WHERE t.user_id = $1
     LIMIT $2
), gone AS (
    DELETE FROM checkpoint_writes AS w
     WHERE w.ctid = ANY (ARRAY(SELECT d.row_id FROM doomed AS d))
       AND w.owner = $1
    RETURNING 1
)
SELECT count(*)
  FROM gone;

-- name: delete_erasure_checkpoint_blobs
-- One batch of the channel values of the user's threads.
-- returns: value
-- uses: threads_user_updated_idx, checkpoint_blobs_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH doomed AS (
    SELECT b.ctid AS row_id
      FROM threads AS t
      JOIN checkpoint_blobs AS b ON b.thread_id = t.thread_id AND b.owner = t.owner
     WHERE t.user_id = $1
     LIMIT $2
), gone AS (
    DELETE FROM checkpoint_blobs AS b
     WHERE b.ctid = ANY (ARRAY(SELECT d.row_id FROM doomed AS d))
       AND b.owner = $1
    RETURNING 1
)
SELECT count(*)
  FROM gone;

-- name: delete_erasure_checkpoints
-- One batch of the checkpoints of the user's threads.
-- returns: value
-- uses: threads_user_updated_idx, checkpoints_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH doomed AS (
    SELECT c.ctid AS row_id
      FROM threads AS t
      JOIN checkpoints AS c ON c.thread_id = t.thread_id AND c.owner = t.owner
     WHERE t.user_id = $1
     LIMIT $2
), gone AS (
    DELETE FROM checkpoints AS c
     WHERE c.ctid = ANY (ARRAY(SELECT d.row_id FROM doomed AS d))
       AND c.owner = $1
    RETURNING 1
)
SELECT count(*)
  FROM gone;

-- name: delete_erasure_threads
-- One batch of the user's threads, once their checkpoints are gone (the threads' delete
-- trigger takes what was written since).
-- returns: value
-- uses: threads_user_updated_idx, threads_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH doomed AS (
    SELECT t.thread_id, t.owner
      FROM threads AS t
     WHERE t.user_id = $1
     LIMIT $2
       FOR UPDATE
), gone AS (
    DELETE FROM threads AS t
     USING doomed AS d
     WHERE t.thread_id = d.thread_id
       AND t.owner = d.owner
    RETURNING 1
)
SELECT count(*)
  FROM gone;

-- name: delete_erasure_attachment_chunks
-- One batch of the chunks (and thumbnails) of the user's files, found by the files: a file
-- is up to 50 chunks of 1 MiB, so files go chunk by chunk, not whole.
-- returns: columns attachment_chunks, attachment_thumbnails
-- uses: attachments_user_idx, attachment_chunks_pkey, attachment_thumbnails_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH doomed AS (
    SELECT k.attachment_id, k.n
      FROM attachments AS a
      JOIN attachment_chunks AS k ON k.attachment_id = a.id
     WHERE a.user_id = $1
     LIMIT $2
), thumbnails AS (
    DELETE FROM attachment_thumbnails AS t
     WHERE t.attachment_id = ANY (ARRAY(SELECT DISTINCT d.attachment_id FROM doomed AS d))
    RETURNING 1
), gone AS (
    DELETE FROM attachment_chunks AS k
     USING doomed AS d
     WHERE k.attachment_id = d.attachment_id
       AND k.n = d.n
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS attachment_chunks,
       (SELECT count(*) FROM thumbnails) AS attachment_thumbnails;

-- name: delete_erasure_attachments
-- One batch of the user's files, once their chunks are gone, with every reference to them
-- (the user's own messages' are gone already; what is left are others' messages that
-- re-shared the file: their parts keep the url, which now answers 404) and any thumbnail
-- made since.
-- returns: columns attachments, message_attachments, attachment_thumbnails
-- uses: attachments_user_idx, attachments_pkey, message_attachments_attachment_idx
-- uses: attachment_thumbnails_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH doomed AS (
    SELECT a.id
      FROM attachments AS a
     WHERE a.user_id = $1
     ORDER BY a.user_id, a.id
     LIMIT $2
       FOR UPDATE
), refs AS (
    DELETE FROM message_attachments AS r
     WHERE r.attachment_id = ANY (ARRAY(SELECT d.id FROM doomed AS d))
    RETURNING 1
), thumbnails AS (
    DELETE FROM attachment_thumbnails AS t
     WHERE t.attachment_id = ANY (ARRAY(SELECT d.id FROM doomed AS d))
    RETURNING 1
), gone AS (
    DELETE FROM attachments AS a
     WHERE a.id = ANY (ARRAY(SELECT d.id FROM doomed AS d))
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS attachments,
       (SELECT count(*) FROM refs) AS message_attachments,
       (SELECT count(*) FROM thumbnails) AS attachment_thumbnails;

-- name: delete_erasure_profiles
-- One batch of the user's runtime profiles (their secrets with them).
-- returns: value
-- uses: profiles_scope_kind_name_key, profiles_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH gone AS (
    DELETE FROM profiles AS p
     WHERE p.id = ANY (ARRAY(SELECT q.id
                               FROM profiles AS q
                              WHERE q.scope = $1
                                AND q.user_id = $1
                              LIMIT $2))
    RETURNING 1
)
SELECT count(*)
  FROM gone;

-- name: delete_erasure_tokens
-- One batch of the user's API tokens.
-- returns: value
-- uses: api_tokens_user_id_idx, api_tokens_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH gone AS (
    DELETE FROM api_tokens AS t
     WHERE t.id = ANY (ARRAY(SELECT k.id
                               FROM api_tokens AS k
                              WHERE k.user_id = $1
                              LIMIT $2))
    RETURNING 1
)
SELECT count(*)
  FROM gone;

-- name: delete_erasure_refresh_tokens
-- One batch of the refresh tokens of the user's sign-in sessions (README "Identity"): a
-- session refreshed often holds many used ones, too many to go by cascade in one statement.
-- returns: value
-- uses: auth_sessions_user_id_idx, refresh_tokens_session_id_idx, refresh_tokens_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH gone AS (
    DELETE FROM refresh_tokens AS r
     WHERE r.token_hash = ANY (ARRAY(SELECT k.token_hash
                                       FROM auth_sessions AS s
                                       JOIN refresh_tokens AS k ON k.session_id = s.id
                                      WHERE s.user_id = $1
                                      LIMIT $2))
    RETURNING 1
)
SELECT count(*)
  FROM gone;

-- name: delete_erasure_sessions
-- One batch of the user's sign-in sessions (their refresh tokens gone first).
-- returns: value
-- uses: auth_sessions_user_id_idx, auth_sessions_pkey
-- $1 user_id uuid
-- $2 batch int8
WITH gone AS (
    DELETE FROM auth_sessions AS s
     WHERE s.id = ANY (ARRAY(SELECT k.id
                               FROM auth_sessions AS k
                              WHERE k.user_id = $1
                              LIMIT $2))
    RETURNING 1
)
SELECT count(*)
  FROM gone;

-- name: delete_erasure_login_failures
-- One batch of the failed sign-in counters of the user's username (keyed by the username, for
-- usernames nobody has too, so no foreign key takes them).
-- returns: value
-- uses: login_failures_pkey
-- $1 username text
-- $2 batch int8
WITH gone AS (
    DELETE FROM login_failures AS f
     WHERE f.username = $1
       AND f.client = ANY (ARRAY(SELECT k.client
                                   FROM login_failures AS k
                                  WHERE k.username = $1
                                  LIMIT $2))
    RETURNING 1
)
SELECT count(*)
  FROM gone;

-- name: delete_erasure_user
-- Last: the user's counters (messages per stripe, attachment bytes) and the user's row; any
-- table added later with a foreign key to users ON DELETE CASCADE goes with it.
-- returns: columns users, user_message_counts, attachment_usage
-- uses: users_pkey, user_message_counts_pkey, attachment_usage_pkey
-- $1 user_id uuid
WITH counts AS (
    DELETE FROM user_message_counts AS u
     WHERE u.user_id = $1
    RETURNING 1
), usage AS (
    DELETE FROM attachment_usage AS u
     WHERE u.user_id = $1
    RETURNING 1
), gone AS (
    DELETE FROM users AS u
     WHERE u.id = $1
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS users,
       (SELECT count(*) FROM counts) AS user_message_counts,
       (SELECT count(*) FROM usage) AS attachment_usage;

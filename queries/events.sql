-- TEMPORARY (branch i12-sse): stand-ins for the lead's event-log queries (replaced on merge).

-- name: list_task_events
-- A page of the caller's task's events after a seq, with the log's head (0 rows: not theirs).
-- returns: columns seq, type, payload, created_at, head
-- $1 user_id uuid
-- $2 task_id uuid
-- $3 after int8
-- $4 page_size int8
SELECT e.seq, e.type, e.payload, e.created_at, h.head
  FROM tasks AS t
 CROSS JOIN LATERAL (SELECT coalesce(max(x.seq), 0)::int8 AS head
                       FROM task_events AS x
                      WHERE x.task_id = t.id) AS h
  LEFT JOIN LATERAL (SELECT x.seq, x.type, x.payload, x.created_at
                       FROM task_events AS x
                      WHERE x.task_id = t.id AND x.seq > $3
                      ORDER BY x.seq
                      LIMIT $4) AS e ON true
 WHERE t.id = $2 AND t.user_id = $1
 ORDER BY e.seq;

-- name: list_conversation_events
-- A page of a conversation's events after a seq, with the log's head, for a member who may
-- read it (0 rows: not theirs).
-- returns: columns seq, type, payload, created_at, head
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 after int8
-- $4 page_size int8
SELECT e.seq, e.type, e.payload, e.created_at, h.head
  FROM conversations AS c
 CROSS JOIN LATERAL (SELECT coalesce(max(x.seq), 0)::int8 AS head
                       FROM conversation_events AS x
                      WHERE x.conversation_id = c.id) AS h
  LEFT JOIN LATERAL (SELECT x.seq, x.type, x.payload, x.created_at
                       FROM conversation_events AS x
                      WHERE x.conversation_id = c.id AND x.seq > $3
                      ORDER BY x.seq
                      LIMIT $4) AS e ON true
 WHERE c.id = $2
   AND EXISTS (SELECT 1
                 FROM conversation_members AS mm
                WHERE mm.conversation_id = $2
                  AND mm.user_id = $1
                  AND mnemo_may(mm.role, 'read'))
 ORDER BY e.seq;

-- name: list_task_events_unscoped
-- Events of a task's log after a seq.
-- uses: task_events_pkey
-- returns: Event
-- $1 task_id uuid
-- $2 after int8
-- $3 page_size int8
SELECT seq, type, payload, created_at
  FROM task_events
 WHERE task_id = $1 AND seq > $2
 ORDER BY seq
 LIMIT $3;

-- name: list_conversation_events_unscoped
-- Events of a conversation's log after a seq.
-- uses: conversation_events_pkey
-- returns: Event
-- $1 conversation_id uuid
-- $2 after int8
-- $3 page_size int8
SELECT seq, type, payload, created_at
  FROM conversation_events
 WHERE conversation_id = $1 AND seq > $2
 ORDER BY seq
 LIMIT $3;

-- name: insert_task_event
-- Append one event to a task's log (the task row lock orders the appends).
-- returns: Event
-- $1 task_id uuid
-- $2 type text
-- $3 payload jsonb
WITH locked AS (SELECT id FROM tasks WHERE id = $1 FOR UPDATE)
INSERT INTO task_events (task_id, seq, type, payload)
SELECT l.id,
       coalesce((SELECT max(x.seq) FROM task_events AS x WHERE x.task_id = l.id), 0) + 1,
       $2, $3
  FROM locked AS l
RETURNING seq, type, payload, created_at;

-- name: insert_conversation_event
-- Append one event to a conversation's log (the conversation row lock orders the appends).
-- returns: Event
-- $1 conversation_id uuid
-- $2 type text
-- $3 payload jsonb
WITH locked AS (SELECT id FROM conversations WHERE id = $1 FOR UPDATE)
INSERT INTO conversation_events (conversation_id, seq, type, payload)
SELECT l.id,
       coalesce((SELECT max(x.seq) FROM conversation_events AS x
                  WHERE x.conversation_id = l.id), 0) + 1,
       $2, $3
  FROM locked AS l
RETURNING seq, type, payload, created_at;

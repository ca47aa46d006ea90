-- Event logs (README "Event logs", migration 20261207_04): a conversation's or a task's
-- append-only log of typed events, numbered by a gapless seq. A conversation's log is read by
-- its members who may 'read' and appended to by those who may 'append'; a task's is its
-- owner's (and a worker's: the queue statements take no user). An append moves the log's
-- head (last_event_seq: the row's lock queues concurrent appends) and inserts the events
-- after it in the same statement, and NOTIFYs 'mnemo_events' with the log and its new head.
-- Pages run in seq order after $n (0: from the start).

-- name: list_conversation_events
-- A page of conversation $2's log after seq $3, at most $4 events, with the log's head now
-- (last_seq). No row: the conversation is missing or the caller may not read it. One row
-- with NULL event columns: nothing after $3.
-- returns: columns seq, type, payload, created_at, last_seq
-- uses: conversation_members_pkey, conversations_pkey, conversation_events_pkey
-- uses: conversation_members_joined_idx, conversation_members_user_idx
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 after int8
-- $4 limit int8
SELECT e.seq, e.type, e.payload, e.created_at, c.last_event_seq AS last_seq
  FROM conversation_members AS mm
  JOIN conversations AS c ON c.id = mm.conversation_id
  LEFT JOIN LATERAL (SELECT ce.seq, ce.type, ce.payload, ce.created_at
                       FROM conversation_events AS ce
                      WHERE ce.conversation_id = c.id
                        AND ce.seq > $3
                      ORDER BY ce.seq
                      LIMIT $4) AS e ON true
 WHERE mm.conversation_id = $2
   AND mm.user_id = $1
   AND mnemo_may(mm.role, 'read')
 ORDER BY e.seq;

-- name: list_task_events
-- A page of task $2's log after seq $3, at most $4 events, with the log's head now. No row:
-- no such task of the caller's ($1; NULL: any task, a worker's read). One row with NULL event
-- columns: nothing after $3.
-- returns: columns seq, type, payload, created_at, last_seq
-- uses: tasks_pkey, task_events_pkey, tasks_user_idx
-- $1 user_id uuid               NULL: unscoped
-- $2 task_id uuid
-- $3 after int8
-- $4 limit int8
SELECT e.seq, e.type, e.payload, e.created_at, t.last_event_seq AS last_seq
  FROM tasks AS t
  LEFT JOIN LATERAL (SELECT te.seq, te.type, te.payload, te.created_at
                       FROM task_events AS te
                      WHERE te.task_id = t.id
                        AND te.seq > $3
                      ORDER BY te.seq
                      LIMIT $4) AS e ON true
 WHERE t.id = $2
   AND ($1::uuid IS NULL OR t.user_id = $1::uuid)
 ORDER BY e.seq;

-- name: list_events_of_conversation
-- Conversation $1's events after seq $2, at most $3, unscoped (no user): the live streams' fan-out,
-- whose routes checked the reader when the stream began.
-- returns: Event
-- uses: conversation_events_pkey
-- $1 conversation_id uuid
-- $2 after int8
-- $3 limit int8
SELECT seq, type, payload, created_at
  FROM conversation_events
 WHERE conversation_id = $1
   AND seq > $2
 ORDER BY seq
 LIMIT $3;

-- name: list_events_of_task
-- Task $1's events after seq $2, at most $3, unscoped (as list_events_of_conversation).
-- returns: Event
-- uses: task_events_pkey
-- $1 task_id uuid
-- $2 after int8
-- $3 limit int8
SELECT seq, type, payload, created_at
  FROM task_events
 WHERE task_id = $1
   AND seq > $2
 ORDER BY seq
 LIMIT $3;

-- name: append_conversation_events
-- Append events ($3 types and $4 payloads, in order) to conversation $2's log, as member $1
-- whose role may 'append'. Rows: the events written. One row with NULL event columns and
-- forbidden = true: the member may not append (nothing written). No row: the conversation
-- is missing or the caller is not a member.
-- returns: Event + forbidden
-- uses: conversation_members_pkey, conversations_pkey, conversation_members_joined_idx
-- uses: conversation_members_user_idx
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 types text[]
-- $4 payloads jsonb[]
WITH member AS (
    SELECT mnemo_may(mm.role, 'append') AS allowed
      FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), bumped AS (
    UPDATE conversations AS c
       SET last_event_seq = c.last_event_seq + cardinality($3::text[])
      FROM member AS mb
     WHERE c.id = $2
       AND mb.allowed
    RETURNING c.id, c.last_event_seq - cardinality($3::text[]) AS first_after,
              pg_notify('mnemo_events', 'conversation:' || c.id || ':' || c.last_event_seq)
), inserted AS (
    INSERT INTO conversation_events (conversation_id, seq, type, payload)
    SELECT b.id, b.first_after + x.n, x.type, x.payload
      FROM bumped AS b, unnest($3::text[], $4::jsonb[]) WITH ORDINALITY AS x(type, payload, n)
    RETURNING seq, type, payload, created_at
)
SELECT seq, type, payload, created_at, false AS forbidden
  FROM inserted
 UNION ALL
SELECT NULL, NULL, NULL, NULL, true
  FROM member AS mb
 WHERE NOT mb.allowed
 ORDER BY 1;

-- name: append_task_events
-- Append events ($3 types and $4 payloads, in order) to task $2's log: the owner's ($1) or,
-- with $1 NULL, a worker's. Rows: the events written. No row: no such task (of the owner's).
-- returns: Event
-- uses: tasks_pkey, tasks_user_idx
-- $1 user_id uuid               NULL: unscoped
-- $2 task_id uuid
-- $3 types text[]
-- $4 payloads jsonb[]
WITH bumped AS (
    UPDATE tasks AS t
       SET last_event_seq = t.last_event_seq + cardinality($3::text[])
     WHERE t.id = $2
       AND ($1::uuid IS NULL OR t.user_id = $1::uuid)
    RETURNING t.id, t.last_event_seq - cardinality($3::text[]) AS first_after,
              pg_notify('mnemo_events', 'task:' || t.id || ':' || t.last_event_seq)
), inserted AS (
    INSERT INTO task_events (task_id, seq, type, payload)
    SELECT b.id, b.first_after + x.n, x.type, x.payload
      FROM bumped AS b, unnest($3::text[], $4::jsonb[]) WITH ORDINALITY AS x(type, payload, n)
    RETURNING seq, type, payload, created_at
)
SELECT seq, type, payload, created_at
  FROM inserted
 ORDER BY seq;

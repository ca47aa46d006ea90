-- Tasks (README "Tasks"): work a user submits and workers run. The lifecycle is the
-- migration's (20261207_03): task_transitions lists the legal status changes and the trigger
-- mnemo_task_row refuses any other (SQLSTATE MNT01: IllegalTransition, 409) and stamps the
-- transition times, whatever statement runs. A task is its owner's: the statements a user's
-- request runs filter by user_id ($1), so another user's task is not found. The queue
-- statements (claim, heartbeat, complete, fail) are the workers': they take no user, and
-- complete/fail/heartbeat act only while the worker named holds an unexpired lease.

-- fragment: task_columns
-- A task's columns, as Task has them (queue_rank is the queue's own, not shown).
id, user_id, kind, title, description, priority, input, result, error, status, attempts,
max_attempts, run_after, lease_until, worker, conversation_id, thread_id, created_at,
started_at, finished_at, cancelled_at, updated_at

-- name: insert_task
-- Create a pending task of user $2; when it names a conversation ($9), only if the caller is
-- a member whose role may 'read' it. No row: that conversation is not theirs to read (nothing
-- written).
-- returns: Task
-- uses: conversation_members_pkey
-- $1 id uuid
-- $2 user_id uuid
-- $3 kind text
-- $4 title text
-- $5 description text
-- $6 priority int4
-- $7 input jsonb
-- $8 max_attempts int4
-- $9 conversation_id uuid       NULL: none
-- $10 thread_id text            NULL: none
INSERT INTO tasks (id, user_id, kind, title, description, priority, input, max_attempts,
                   conversation_id, thread_id)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
 WHERE $9::uuid IS NULL
    OR EXISTS (SELECT 1
                 FROM conversation_members AS mm
                WHERE mm.conversation_id = $9::uuid
                  AND mm.user_id = $2
                  AND mnemo_may(mm.role, 'read'))
RETURNING
{{task_columns}};

-- name: get_task
-- The caller's task $2. No row: no such task of theirs.
-- returns: Task
-- uses: tasks_pkey
-- $1 user_id uuid
-- $2 id uuid
SELECT
{{task_columns}}
  FROM tasks
 WHERE id = $2
   AND user_id = $1;

-- name: list_tasks
-- A page of the caller's tasks, newest first (ids are UUIDv7), after the id $2 of the
-- previous page's last row (the largest uuid for the first page); only kind $3 when given,
-- a filter on the index's rows (a user's task list is not a hot path).
-- returns: Task
-- uses: tasks_user_idx
-- $1 user_id uuid
-- $2 before_id uuid
-- $3 kind text                  NULL: every kind
-- $4 page_size int8             rows wanted + 1
SELECT
{{task_columns}}
  FROM tasks
 WHERE user_id = $1
   AND id < $2
   AND ($3::text IS NULL OR kind = $3::text)
 ORDER BY id DESC
 LIMIT $4;

-- name: list_tasks_by_status
-- list_tasks, only tasks of status $3 (its own index: a few pending or running tasks among
-- many finished ones are read without the rest).
-- returns: Task
-- uses: tasks_user_status_idx
-- $1 user_id uuid
-- $2 before_id uuid
-- $3 status text
-- $4 kind text                  NULL: every kind
-- $5 page_size int8             rows wanted + 1
SELECT
{{task_columns}}
  FROM tasks
 WHERE user_id = $1
   AND status = $3
   AND id < $2
   AND ($4::text IS NULL OR kind = $4::text)
 ORDER BY id DESC
 LIMIT $5;

-- name: list_tasks_of_conversation
-- list_tasks, only the caller's tasks linked to conversation $3; status $4 and kind $5 are
-- filters on the conversation's rows.
-- returns: Task
-- uses: tasks_conversation_idx
-- $1 user_id uuid
-- $2 before_id uuid
-- $3 conversation_id uuid
-- $4 status text                NULL: every status
-- $5 kind text                  NULL: every kind
-- $6 page_size int8             rows wanted + 1
SELECT
{{task_columns}}
  FROM tasks
 WHERE conversation_id = $3
   AND id < $2
   AND user_id = $1
   AND ($4::text IS NULL OR status = $4::text)
   AND ($5::text IS NULL OR kind = $5::text)
 ORDER BY id DESC
 LIMIT $6;

-- name: list_tasks_by_priority
-- A page of the caller's tasks, highest priority first, then newest, after the keyset
-- ($2 priority, $3 id) of the previous page's last row (a priority above the largest and the
-- largest uuid for the first page); only kind $4 when given. The order is not an index's:
-- the caller's tasks are read by tasks_user_idx and sorted (a top-N sort: memory for one
-- page), each page reading all of them. A user's task list is not a hot path, and an index on
-- (user_id, priority, id) would be one more entry to write on every claim, heartbeat and
-- completion (none of them is a HOT update), which is.
-- returns: Task
-- uses: tasks_user_idx
-- $1 user_id uuid
-- $2 before_priority int4
-- $3 before_id uuid
-- $4 kind text                  NULL: every kind
-- $5 page_size int8             rows wanted + 1
SELECT
{{task_columns}}
  FROM tasks
 WHERE user_id = $1
   AND (priority, id) < ($2::int4, $3::uuid)
   AND ($4::text IS NULL OR kind = $4::text)
 ORDER BY priority DESC, id DESC
 LIMIT $5;

-- name: list_tasks_by_status_by_priority
-- list_tasks_by_priority, only tasks of status $4: read by tasks_user_status_idx (a few
-- pending or running tasks among many finished ones are read without the rest) and sorted.
-- returns: Task
-- uses: tasks_user_status_idx
-- $1 user_id uuid
-- $2 before_priority int4
-- $3 before_id uuid
-- $4 status text
-- $5 kind text                  NULL: every kind
-- $6 page_size int8             rows wanted + 1
SELECT
{{task_columns}}
  FROM tasks
 WHERE user_id = $1
   AND status = $4
   AND (priority, id) < ($2::int4, $3::uuid)
   AND ($5::text IS NULL OR kind = $5::text)
 ORDER BY priority DESC, id DESC
 LIMIT $6;

-- name: list_tasks_of_conversation_by_priority
-- list_tasks_by_priority, only the caller's tasks linked to conversation $4: read by
-- tasks_conversation_idx and sorted; status $5 and kind $6 are filters on the
-- conversation's rows.
-- returns: Task
-- uses: tasks_conversation_idx
-- $1 user_id uuid
-- $2 before_priority int4
-- $3 before_id uuid
-- $4 conversation_id uuid
-- $5 status text                NULL: every status
-- $6 kind text                  NULL: every kind
-- $7 page_size int8             rows wanted + 1
SELECT
{{task_columns}}
  FROM tasks
 WHERE conversation_id = $4
   AND user_id = $1
   AND (priority, id) < ($2::int4, $3::uuid)
   AND ($5::text IS NULL OR status = $5::text)
   AND ($6::text IS NULL OR kind = $6::text)
 ORDER BY priority DESC, id DESC
 LIMIT $7;

-- name: cancel_task
-- Cancel the caller's task $2: pending or running -> cancelled (a running task's worker then
-- finds its lease gone). A final task raises IllegalTransition from the trigger (an already
-- cancelled one is left as it is: same status, no transition). No row: no such task of theirs.
-- returns: Task
-- uses: tasks_pkey
-- $1 user_id uuid
-- $2 id uuid
UPDATE tasks
   SET status = 'cancelled'
 WHERE id = $2
   AND user_id = $1
RETURNING
{{task_columns}};

-- name: claim_tasks
-- A worker's claim, in one statement:
-- * expired leases first: up to $4 running tasks whose lease_until passed (by
--   tasks_lease_idx, SKIP LOCKED) go back to pending, runnable now, with error saying the
--   lease expired, or to failed when they used their max_attempts. (They are claimable from
--   the next claim on: a statement does not see its own changes.)
-- * then up to $4 pending tasks of the kinds $1 whose run_after has passed, by effective
--   priority (queue_rank, see the migration) then age, per kind by tasks_queue_idx, locked
--   with FOR UPDATE SKIP LOCKED (a task another worker is claiming is skipped, never waited
--   for nor taken twice), set running with worker $2, a lease of $3 seconds and one more
--   attempt. The trigger stamps started_at.
-- Rows: the claimed tasks, in queue order (none: nothing to do).
-- returns: Task
-- uses: tasks_lease_idx, tasks_queue_idx, tasks_pkey
-- $1 kinds text[]
-- $2 worker text
-- $3 lease_seconds float8
-- $4 max_tasks int8
WITH expired AS (
    SELECT t.id
      FROM tasks AS t
     WHERE t.status = 'running'
       AND t.lease_until < now()
     ORDER BY t.lease_until
     LIMIT $4
       FOR UPDATE SKIP LOCKED
), requeued AS (
    UPDATE tasks AS t
       SET status = CASE WHEN t.attempts < t.max_attempts THEN 'pending' ELSE 'failed' END,
           error = jsonb_build_object('code', 'lease_expired', 'worker', t.worker,
                                      'attempt', t.attempts),
           run_after = now(),
           worker = NULL
      FROM expired AS e
     WHERE t.id = e.id
    RETURNING t.id
), candidates AS (
    SELECT c.id, c.queue_rank
      FROM unnest($1::text[]) AS k(kind)
     CROSS JOIN LATERAL (
            SELECT t.id, t.queue_rank
              FROM tasks AS t
             WHERE t.kind = k.kind
               AND t.status = 'pending'
               AND t.run_after <= now()
             ORDER BY t.queue_rank
             LIMIT $4
               FOR UPDATE SKIP LOCKED
           ) AS c
     ORDER BY c.queue_rank, c.id
     LIMIT $4
), claimed AS (
    UPDATE tasks AS t
       SET status = 'running',
           worker = $2,
           lease_until = now() + make_interval(secs => $3),
           attempts = t.attempts + 1
      FROM candidates AS c
     WHERE t.id = c.id
    RETURNING t.*
)
SELECT
{{task_columns}}
  FROM claimed
 ORDER BY queue_rank, id;

-- name: heartbeat_task
-- Extend the lease of task $1 to $3 seconds from now, if worker $2 still holds it (running,
-- its worker, the lease not yet expired). No row: it does not (the lease expired, the task
-- was cancelled or re-claimed).
-- returns: Task
-- uses: tasks_pkey
-- $1 id uuid
-- $2 worker text
-- $3 lease_seconds float8
UPDATE tasks
   SET lease_until = now() + make_interval(secs => $3)
 WHERE id = $1
   AND status = 'running'
   AND worker = $2
   AND lease_until > now()
RETURNING
{{task_columns}};

-- name: complete_task
-- Task $1 succeeded with result $3, if worker $2 still holds its lease (as heartbeat_task).
-- No row: it does not, and nothing changed.
-- returns: Task
-- uses: tasks_pkey
-- $1 id uuid
-- $2 worker text
-- $3 result jsonb
UPDATE tasks
   SET status = 'succeeded',
       result = $3
 WHERE id = $1
   AND status = 'running'
   AND worker = $2
   AND lease_until > now()
RETURNING
{{task_columns}};

-- name: complete_tasks
-- Tasks $1 succeeded, each with the result of $3 at its place, where worker $2 still holds
-- its lease: a batch in one statement, so one commit (and one NOTIFY flush) for many tasks.
-- Rows: the tasks completed; a task the worker no longer holds is left out, unchanged. An id
-- given twice is completed once, with the first of its results.
-- returns: Task
-- uses: tasks_pkey
-- $1 ids uuid[]
-- $2 worker text
-- $3 results jsonb[]
UPDATE tasks AS t
   SET status = 'succeeded',
       result = ($3::jsonb[])[array_position($1::uuid[], t.id)]
 WHERE t.id = ANY ($1::uuid[])
   AND t.status = 'running'
   AND t.worker = $2
   -- (the lease compared so that it reads no index: the ids' is the way in, not the running
   -- tasks' tasks_lease_idx, which a generic plan would otherwise take)
   AND t.lease_until - now() > interval '0'
RETURNING
{{task_columns}};

-- name: fail_task
-- Task $1 failed with error $3, if worker $2 still holds its lease (as heartbeat_task). With
-- $4 (retry) and attempts left (attempts < max_attempts) it goes back to pending, runnable
-- after an exponential backoff: $5 * 2^(attempts - 1) seconds, at most $6; otherwise it is
-- failed for good. No row: the worker does not hold it, and nothing changed.
-- returns: Task
-- uses: tasks_pkey
-- $1 id uuid
-- $2 worker text
-- $3 error jsonb
-- $4 retry bool
-- $5 backoff_base_seconds float8
-- $6 backoff_cap_seconds float8
UPDATE tasks AS t
   SET status = CASE WHEN $4 AND t.attempts < t.max_attempts THEN 'pending' ELSE 'failed' END,
       error = $3,
       run_after = CASE WHEN $4 AND t.attempts < t.max_attempts
                        THEN now() + make_interval(
                                 secs => least($6, $5 * power(2, t.attempts - 1)))
                        ELSE t.run_after END,
       worker = CASE WHEN $4 AND t.attempts < t.max_attempts THEN NULL ELSE t.worker END
 WHERE t.id = $1
   AND t.status = 'running'
   AND t.worker = $2
   AND t.lease_until > now()
RETURNING
{{task_columns}};

-- name: release_task
-- Give task $1 back to the queue as it was before worker $2 claimed it, if the worker still
-- holds its lease (as heartbeat_task): pending, runnable now, the attempt its claim counted
-- undone (a worker that stops is not the task's failure). No row: the worker does not hold
-- it, and nothing changed.
-- returns: Task
-- uses: tasks_pkey
-- $1 id uuid
-- $2 worker text
UPDATE tasks
   SET status = 'pending',
       attempts = attempts - 1,
       run_after = now(),
       worker = NULL
 WHERE id = $1
   AND status = 'running'
   AND worker = $2
   AND lease_until > now()
RETURNING
{{task_columns}};

-- name: get_task_wait
-- Seconds from now until a claim of kinds $1 may find work, for a worker whose claim found
-- none: the earliest run_after among the first 100 pending tasks of each kind in queue order
-- (tasks waiting out a backoff: after an empty claim no other pending task is runnable), or
-- the earliest lease of a running task of those kinds to expire, whichever is sooner.
-- 0 or less: now; NULL: nothing pending nor running. Past 100 tasks in backoff per kind it
-- may be later than the truth; the worker's poll interval bounds the error.
-- returns: value
-- uses: tasks_queue_idx, tasks_lease_idx
-- $1 kinds text[]
SELECT extract(epoch FROM least(
           (SELECT min(q.run_after)
              FROM unnest($1::text[]) AS k(kind)
             CROSS JOIN LATERAL (
                    SELECT t.run_after
                      FROM tasks AS t
                     WHERE t.kind = k.kind
                       AND t.status = 'pending'
                     ORDER BY t.queue_rank
                     LIMIT 100
                   ) AS q),
           (SELECT t.lease_until
              FROM tasks AS t
             WHERE t.status = 'running'
               AND t.kind = ANY($1::text[])
             ORDER BY t.lease_until
             LIMIT 1)
       ) - now())::float8;

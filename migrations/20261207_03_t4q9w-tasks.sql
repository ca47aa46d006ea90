-- Tasks (README "Tasks"): work a user submits and a worker runs, with a lifecycle PostgreSQL
-- itself enforces, and a queue on the same table.
-- * task_transitions: the legal (from, to) status changes. A row's status starts 'pending'
--   and changes only along these pairs: pending -> running -> succeeded | failed | cancelled,
--   running -> pending (a retry, or an expired lease), pending -> cancelled. succeeded, failed
--   and cancelled are final. The trigger mnemo_task_row refuses anything else, whatever the
--   statement, with SQLSTATE MNT01 (dal.errors: IllegalTransition, answered 409).
-- * tasks: one row per task, owned by a user (another user finds nothing). The trigger also
--   refuses a change to a final task's outcome (result, error, attempts, lease), and
--   stamps the transition times (started_at on each start, finished_at on succeeded or
--   failed, cancelled_at) and updated_at, and keeps queue_rank.
-- Queue order (aging): a pending task's effective priority is
--     priority + (seconds since run_after) / 60
-- so a task gains one priority point per minute it waits once runnable, and a low priority is
-- never starved. Ordering by it, highest first, is ordering by
--     queue_rank = run_after - priority * 60 seconds
-- lowest first (now() is the same for every row of a claim), which an index can hold:
-- tasks_queue_idx (kind, queue_rank) over the pending tasks. Ties go to the older run_after.
-- Tasks are per user, not per conversation (conversation_id is an optional link, set NULL
-- when the conversation goes), so they are not keyed by conversation_id: distributed with
-- Citus, they would be a table of their own keyed by user_id (the queue then spans shards).
-- depends: 20261207_01_a9f4k-attachments

CREATE TABLE task_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO task_transitions (from_status, to_status) VALUES
    ('pending', 'running'),
    ('pending', 'cancelled'),
    ('running', 'succeeded'),
    ('running', 'failed'),
    ('running', 'cancelled'),
    ('running', 'pending');

CREATE TABLE tasks (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            text        NOT NULL CHECK (octet_length(kind) BETWEEN 1 AND 200),
    title           text        NOT NULL CHECK (char_length(title) <= 1000),
    description     text        NOT NULL DEFAULT '' CHECK (char_length(description) <= 20000),
    priority        integer     NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    input           jsonb       NOT NULL DEFAULT '{}',
    result          jsonb,
    error           jsonb,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'running', 'succeeded', 'failed',
                                                  'cancelled')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer     NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    run_after       timestamptz NOT NULL DEFAULT now(),
    queue_rank      timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    worker          text        CHECK (octet_length(worker) <= 200),
    conversation_id uuid        REFERENCES conversations (id) ON DELETE SET NULL,
    thread_id       text        CHECK (char_length(thread_id) BETWEEN 1 AND 500),
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    cancelled_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tasks_running_leased CHECK (status <> 'running'
                                           OR (lease_until IS NOT NULL AND worker IS NOT NULL))
);
-- list_tasks: a user's tasks, newest first (ids are UUIDv7).
CREATE INDEX tasks_user_idx ON tasks (user_id, id);
-- list_tasks_by_status: a user's tasks of one status, newest first.
CREATE INDEX tasks_user_status_idx ON tasks (user_id, status, id);
-- claim_tasks: the pending tasks of a kind, by effective priority (see above).
CREATE INDEX tasks_queue_idx ON tasks (kind, queue_rank) WHERE status = 'pending';
-- claim_tasks: the running tasks whose lease expired, back to the queue.
CREATE INDEX tasks_lease_idx ON tasks (lease_until) WHERE status = 'running';
-- list_tasks_of_conversation, and the ON DELETE SET NULL of a conversation's deletion.
CREATE INDEX tasks_conversation_idx ON tasks (conversation_id, id)
    WHERE conversation_id IS NOT NULL;

CREATE FUNCTION mnemo_task_row() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'pending' THEN
            RAISE EXCEPTION 'illegal task transition: a task starts pending, not %', NEW.status
                USING ERRCODE = 'MNT01';
        END IF;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NOT EXISTS (SELECT 1 FROM task_transitions AS t
                        WHERE t.from_status = OLD.status AND t.to_status = NEW.status) THEN
            RAISE EXCEPTION 'illegal task transition: % -> %', OLD.status, NEW.status
                USING ERRCODE = 'MNT01';
        END IF;
        IF NEW.status = 'running' THEN
            NEW.started_at := now();
        ELSIF NEW.status IN ('succeeded', 'failed') THEN
            NEW.finished_at := now();
        ELSIF NEW.status = 'cancelled' THEN
            NEW.cancelled_at := now();
        END IF;
        IF NEW.status <> 'running' THEN
            NEW.lease_until := NULL;
        END IF;
    ELSIF OLD.status IN ('succeeded', 'failed', 'cancelled')
          AND ROW(NEW.result, NEW.error, NEW.attempts, NEW.worker, NEW.lease_until, NEW.run_after)
              IS DISTINCT FROM
              ROW(OLD.result, OLD.error, OLD.attempts, OLD.worker, OLD.lease_until, OLD.run_after)
    THEN
        -- (a final task's links may still change: its conversation's deletion unlinks it)
        RAISE EXCEPTION 'illegal task transition: a % task is final', OLD.status
            USING ERRCODE = 'MNT01';
    END IF;
    NEW.queue_rank := NEW.run_after - NEW.priority * interval '60 seconds';
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER tasks_row BEFORE INSERT OR UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION mnemo_task_row();

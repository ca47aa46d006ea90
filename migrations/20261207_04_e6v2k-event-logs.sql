-- Event logs (README "Event logs"): each conversation and each task has an append-only log of
-- typed events (plan, step.started, tool.output, message.created, status, ...), numbered by a
-- gapless per-log seq from 1, that a client pages (after=seq) and follows live (SSE).
-- * conversation_events, task_events: one row per event, keyed (log, seq); they go with their
--   conversation or task (ON DELETE CASCADE).
-- * conversations.last_event_seq, tasks.last_event_seq: the log's head. An append updates it
--   (the row's lock queues concurrent appends to one log) and inserts the events numbered
--   after it, in one statement: no gap (a rolled-back append rolls both back), no duplicate.
-- * Every append NOTIFYs channel 'mnemo_events' with 'conversation:<id>:<seq>' or
--   'task:<id>:<seq>' (its last event's seq), delivered at commit, in commit order; an app
--   process's listener fetches the new events and fans them out to its live streams.
-- * Written by the database itself, in the statement that makes the change, so the log and
--   the data never disagree, whoever writes (the API, a gateway, psql):
--   - messages: message.created (an append), message.delta (parts appended to a streaming
--     message: the new parts and where they start), message.updated (another edit, or its
--     status), message.retracted, message.deleted;
--   - conversations: conversation.updated (title, metadata, tags, thread, tool integrity);
--   - tasks: status, on creation and on every status change (mnemo_task_row numbers it in
--     the row's own write: a claim or a completion writes no second version of the row).
-- Message events carry what the message is (id, seq, role, status, sender, counts), not its
-- parts (a delta's new parts excepted): a reader GETs the message, and a message's text is
-- not stored twice.
-- depends: 20261207_03_t4q9w-tasks

ALTER TABLE conversations ADD COLUMN last_event_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN last_event_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE conversation_events (
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint      NOT NULL CHECK (seq > 0),
    type            text        NOT NULL CHECK (type ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    payload         jsonb       NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq)
);

CREATE TABLE task_events (
    task_id    uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq        bigint      NOT NULL CHECK (seq > 0),
    type       text        NOT NULL CHECK (type ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    payload    jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, seq)
);

-- Append one event to a conversation's log; its seq, or NULL when the conversation is gone
-- (a message deleted with its conversation logs nothing). PL/pgSQL, not SQL: called from a
-- trigger for every message, its statements' plans are kept for the session (an SQL
-- function's body would be planned at each call).
CREATE FUNCTION mnemo_conversation_event(conversation uuid, event_type text, event jsonb)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
DECLARE
    appended bigint;
BEGIN
    UPDATE conversations AS c
       SET last_event_seq = c.last_event_seq + 1
     WHERE c.id = conversation
    RETURNING c.last_event_seq INTO appended;
    IF appended IS NOT NULL THEN
        INSERT INTO conversation_events (conversation_id, seq, type, payload)
        VALUES (conversation, appended, event_type, event);
        PERFORM pg_notify('mnemo_events', 'conversation:' || conversation || ':' || appended);
    END IF;
    RETURN appended;
END
$$;

-- What a message event says of the message.
CREATE FUNCTION mnemo_message_event_payload(m messages) RETURNS jsonb
    LANGUAGE sql
    IMMUTABLE
AS $$
    SELECT jsonb_build_object('id', m.id, 'seq', m.seq, 'role', m.role, 'status', m.status,
                              'sender_id', m.sender_id, 'parent_seq', m.parent_seq,
                              'parts_count', m.parts_count)
$$;

CREATE FUNCTION mnemo_message_logged() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
DECLARE
    appended jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM mnemo_conversation_event(NEW.conversation_id, 'message.created',
                                         mnemo_message_event_payload(NEW));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM mnemo_conversation_event(OLD.conversation_id, 'message.deleted',
                                         jsonb_build_object('id', OLD.id, 'seq', OLD.seq));
    ELSIF NEW.retracted_at IS NOT NULL AND OLD.retracted_at IS NULL THEN
        PERFORM mnemo_conversation_event(NEW.conversation_id, 'message.retracted',
                                         jsonb_build_object('id', NEW.id, 'seq', NEW.seq));
    ELSE
        -- Parts appended to a streaming message, the parts before them unchanged: a delta.
        IF OLD.status = 'streaming' AND NEW.parts_count > OLD.parts_count
           AND OLD.metadata = NEW.metadata
           AND jsonb_path_query_array(NEW.parts,
                                      ('$[0 to ' || (OLD.parts_count - 1) || ']')::jsonpath)
               = OLD.parts
        THEN
            appended := jsonb_path_query_array(
                NEW.parts, ('$[' || OLD.parts_count || ' to last]')::jsonpath);
        END IF;
        IF appended IS NOT NULL THEN
            PERFORM mnemo_conversation_event(
                NEW.conversation_id, 'message.delta',
                mnemo_message_event_payload(NEW)
                || jsonb_build_object('index', OLD.parts_count, 'parts', appended));
        ELSE
            PERFORM mnemo_conversation_event(
                NEW.conversation_id, 'message.updated',
                mnemo_message_event_payload(NEW)
                || jsonb_build_object('edited', NEW.edited_at IS DISTINCT FROM OLD.edited_at));
        END IF;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_logged_insert AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION mnemo_message_logged();
CREATE TRIGGER messages_logged_update AFTER UPDATE OF parts, metadata, status, retracted_at
    ON messages
    FOR EACH ROW
    WHEN (OLD.parts IS DISTINCT FROM NEW.parts OR OLD.metadata IS DISTINCT FROM NEW.metadata
          OR OLD.status IS DISTINCT FROM NEW.status
          OR OLD.retracted_at IS DISTINCT FROM NEW.retracted_at)
    EXECUTE FUNCTION mnemo_message_logged();
CREATE TRIGGER messages_logged_delete AFTER DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION mnemo_message_logged();

CREATE FUNCTION mnemo_conversation_logged() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM mnemo_conversation_event(
        NEW.id, 'conversation.updated',
        jsonb_build_object('title', NEW.title, 'tags', to_jsonb(NEW.tags),
                           'thread_id', NEW.thread_id, 'tool_integrity', NEW.tool_integrity,
                           'version', NEW.version,
                           'metadata_changed', NEW.metadata IS DISTINCT FROM OLD.metadata));
    RETURN NULL;
END
$$;
CREATE TRIGGER conversations_logged
    AFTER UPDATE OF title, metadata, tags, thread_id, tool_integrity ON conversations
    FOR EACH ROW
    WHEN (OLD.title IS DISTINCT FROM NEW.title OR OLD.metadata IS DISTINCT FROM NEW.metadata
          OR OLD.tags IS DISTINCT FROM NEW.tags OR OLD.thread_id IS DISTINCT FROM NEW.thread_id
          OR OLD.tool_integrity IS DISTINCT FROM NEW.tool_integrity)
    EXECUTE FUNCTION mnemo_conversation_logged();

-- mnemo_task_row (20261207_03) as it was, and: the task's log head moves with each status
-- change (and its creation), in the row's own write; mnemo_tasks_logged writes the events.
CREATE OR REPLACE FUNCTION mnemo_task_row() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'pending' THEN
            RAISE EXCEPTION 'illegal task transition: a task starts pending, not %', NEW.status
                USING ERRCODE = 'MNT01';
        END IF;
        NEW.last_event_seq := 1;
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
        NEW.last_event_seq := NEW.last_event_seq + 1;
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

-- The status events of a statement's task creations or status changes, numbered by
-- mnemo_task_row: one call per statement (transition tables), not one per row, so a claim or
-- a completion of a batch writes its events in one INSERT.
CREATE FUNCTION mnemo_tasks_logged() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
DECLARE
    notified bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH logged AS (
            INSERT INTO task_events (task_id, seq, type, payload)
            SELECT n.id, n.last_event_seq, 'status',
                   jsonb_strip_nulls(jsonb_build_object('status', n.status,
                                                        'attempts', n.attempts,
                                                        'run_after', n.run_after))
              FROM created AS n
            RETURNING task_id, seq
        )
        SELECT count(pg_notify('mnemo_events', 'task:' || l.task_id || ':' || l.seq))
          INTO notified
          FROM logged AS l;
    ELSE
        WITH logged AS (
            INSERT INTO task_events (task_id, seq, type, payload)
            SELECT n.id, n.last_event_seq, 'status',
                   jsonb_strip_nulls(jsonb_build_object(
                       'status', n.status, 'attempts', n.attempts, 'worker', n.worker,
                       'run_after', CASE WHEN n.status = 'pending' THEN n.run_after END,
                       'error', CASE WHEN n.status IN ('pending', 'failed') THEN n.error END))
              FROM changed AS n
              JOIN unchanged AS o ON o.id = n.id
             WHERE o.status IS DISTINCT FROM n.status
            RETURNING task_id, seq
        )
        SELECT count(pg_notify('mnemo_events', 'task:' || l.task_id || ':' || l.seq))
          INTO notified
          FROM logged AS l;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_logged_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS created
    FOR EACH STATEMENT EXECUTE FUNCTION mnemo_tasks_logged();
CREATE TRIGGER tasks_logged_update AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS unchanged NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mnemo_tasks_logged();

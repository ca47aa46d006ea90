-- Back to the schema of 20261207_03: the logs go, mnemo_task_row as it was.
DROP TRIGGER tasks_logged_update ON tasks;
DROP TRIGGER tasks_logged_insert ON tasks;
DROP FUNCTION mnemo_tasks_logged();
DROP TRIGGER conversations_logged ON conversations;
DROP FUNCTION mnemo_conversation_logged();
DROP TRIGGER messages_logged_delete ON messages;
DROP TRIGGER messages_logged_update ON messages;
DROP TRIGGER messages_logged_insert ON messages;
DROP FUNCTION mnemo_message_logged();
DROP FUNCTION mnemo_message_event_payload(messages);
DROP FUNCTION mnemo_conversation_event(uuid, text, jsonb);
DROP TABLE task_events;
DROP TABLE conversation_events;
ALTER TABLE tasks DROP COLUMN last_event_seq;
ALTER TABLE conversations DROP COLUMN last_event_seq;
CREATE OR REPLACE FUNCTION mnemo_task_row() RETURNS trigger
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

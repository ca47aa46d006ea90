-- TEMPORARY (branch i12-sse): a stand-in for the lead's event logs (20261207_04), only so that
-- the live streams can be tested before they land; deleted when i12 is merged.
-- depends: 20261207_03_t4q9w-tasks

CREATE TABLE conversation_events (
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE task_events (
    task_id uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, seq)
);
CREATE FUNCTION mnemo_tmp_event_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'task_events' THEN
        PERFORM pg_notify('mnemo_events', 'task:' || NEW.task_id || ':' || NEW.seq);
    ELSE
        PERFORM pg_notify('mnemo_events', 'conversation:' || NEW.conversation_id || ':' || NEW.seq);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER mnemo_tmp_task_event AFTER INSERT ON task_events
    FOR EACH ROW EXECUTE FUNCTION mnemo_tmp_event_notify();
CREATE TRIGGER mnemo_tmp_conversation_event AFTER INSERT ON conversation_events
    FOR EACH ROW EXECUTE FUNCTION mnemo_tmp_event_notify();

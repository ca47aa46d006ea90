-- TEMPORARY: see 20261207_99_tmp.sql.
DROP TABLE task_events;
DROP TABLE conversation_events;
DROP FUNCTION mnemo_tmp_event_notify();

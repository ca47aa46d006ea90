-- Back to the schema of 20261207_01: every task goes.
DROP TABLE tasks;
DROP FUNCTION mnemo_task_row();
DROP TABLE task_transitions;

-- Back to 20261207_03's tasks: no notification when a task becomes pending.
DROP TRIGGER tasks_wakeup_requeued ON tasks;
DROP TRIGGER tasks_wakeup_created ON tasks;
DROP FUNCTION mnemo_task_wakeup();

-- Workers woken by LISTEN/NOTIFY (README "Tasks", "Workers"): whenever a task becomes pending
-- (created, or back in the queue: a retry after fail_task, an expired lease, a worker's
-- release_task, any statement at all) a trigger NOTIFYs channel mnemo_tasks with the task's
-- kind. PostgreSQL sends it at commit, once per distinct payload of a transaction (a batch of
-- 10,000 tasks of one kind is one notification), and never for a rolled-back change.
-- * Cheap on the queue's hot path: the WHEN clauses are evaluated without calling the
--   function, so a claim, a heartbeat or a completion (no row turning pending) queues no
--   trigger event at all; only inserts and returns to the queue call mnemo_task_wakeup.
-- * A retry's task is runnable only after its backoff (run_after in the future): its
--   notification wakes idle workers early, they claim nothing and sleep until the earliest
--   run_after of their kinds (get_task_wait), which is how they learn of it.
-- * A NOTIFY takes a database-wide lock at commit, so transactions that create tasks commit
--   one at a time (microseconds each): the price of a wake-up with no polling.
-- depends: 20261207_04_e6v2k-event-logs

CREATE FUNCTION mnemo_task_wakeup() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('mnemo_tasks', NEW.kind);
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_wakeup_created AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.status = 'pending')
    EXECUTE FUNCTION mnemo_task_wakeup();

CREATE TRIGGER tasks_wakeup_requeued AFTER UPDATE ON tasks
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status <> 'pending')
    EXECUTE FUNCTION mnemo_task_wakeup();

-- Workspace snapshots linked to a task (README "Workspace snapshots"), as they are to a
-- conversation: the snapshot of the panels a task produced, say.
-- * task_id: the task the snapshot belongs with, if any (checked at write: one of the
--   caller's own tasks); deleting the task keeps the snapshot, unlinked.
-- * workspace_snapshots_task_idx: list_snapshots_of_task, and the task delete's SET NULL
--   (which would otherwise scan the table once per deleted task); partial, as most
--   snapshots belong to no task.
-- Like conversation_id, the foreign key would go if snapshots were distributed (Citus) by a
-- key other than the task's; the app checks the task at write anyway.
-- depends: 20261207_04_e6v2k-event-logs

ALTER TABLE workspace_snapshots
    ADD COLUMN task_id uuid REFERENCES tasks (id) ON DELETE SET NULL;

CREATE INDEX workspace_snapshots_task_idx
    ON workspace_snapshots (task_id, created_at DESC, id DESC)
    WHERE task_id IS NOT NULL;

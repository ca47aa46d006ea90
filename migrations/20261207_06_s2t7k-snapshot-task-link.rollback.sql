-- Inverse of 20261207_06_s2t7k-snapshot-task-link: snapshots link to a conversation only.
DROP INDEX workspace_snapshots_task_idx;
ALTER TABLE workspace_snapshots DROP COLUMN task_id;

-- Inverse of 20261123_03_k8t2w-create-threads-checkpoints.
ALTER TABLE conversations DROP COLUMN thread_id;
DROP TRIGGER threads_delete_rows ON threads;
DROP FUNCTION mnemo_delete_thread_rows();
DROP TABLE checkpoint_writes;
DROP TABLE checkpoint_blobs;
DROP INDEX checkpoints_run_id_idx;
DROP INDEX checkpoints_metadata_gin;
DROP TABLE checkpoints;
DROP INDEX threads_user_updated_idx;
DROP TABLE threads;

-- Inverse of 20261202_01_t5s1p-threads-per-user. Fails (unique violation) if two owners
-- have a thread of the same id: the old keys cannot hold both; delete or rename one first.

CREATE OR REPLACE FUNCTION mnemo_delete_thread_rows() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    DELETE FROM checkpoint_writes AS w USING deleted_threads AS d WHERE w.thread_id = d.thread_id;
    DELETE FROM checkpoint_blobs AS b USING deleted_threads AS d WHERE b.thread_id = d.thread_id;
    DELETE FROM checkpoints AS c USING deleted_threads AS d WHERE c.thread_id = d.thread_id;
    RETURN NULL;
END
$$;

ALTER TABLE checkpoint_writes DROP CONSTRAINT checkpoint_writes_pkey;
ALTER TABLE checkpoint_writes
    ADD CONSTRAINT checkpoint_writes_pkey
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx);
ALTER TABLE checkpoint_writes DROP COLUMN owner;

ALTER TABLE checkpoint_blobs DROP CONSTRAINT checkpoint_blobs_pkey;
ALTER TABLE checkpoint_blobs
    ADD CONSTRAINT checkpoint_blobs_pkey PRIMARY KEY (thread_id, checkpoint_ns, channel, version);
ALTER TABLE checkpoint_blobs DROP COLUMN owner;

ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_pkey;
ALTER TABLE checkpoints
    ADD CONSTRAINT checkpoints_pkey PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id);
ALTER TABLE checkpoints DROP COLUMN owner;

ALTER TABLE threads DROP CONSTRAINT threads_pkey;
ALTER TABLE threads ADD CONSTRAINT threads_pkey PRIMARY KEY (thread_id);
ALTER TABLE threads DROP CONSTRAINT threads_owner_check;
ALTER TABLE threads DROP COLUMN owner;

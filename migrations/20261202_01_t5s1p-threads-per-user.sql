-- Thread ids are scoped per owner: two users may each have a thread "main". Every thread,
-- checkpoint, blob and write row gets its owner: the Mnemo user's id, or the nil UUID for
-- threads a saver wrote without a user. The keys become (thread_id, owner, ...): thread_id
-- stays first, so rows of one thread stay together (and a distribution by thread_id, as
-- Citus does, still co-locates them). threads.user_id stays the reference to users that
-- deletes a user's threads (ON DELETE CASCADE); it is NULL or equal to the owner.
-- Existing rows take their thread's owner (threads.user_id), else the nil UUID.
-- depends: 20261123_03_k8t2w-create-threads-checkpoints

ALTER TABLE threads ADD COLUMN owner uuid NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE threads ALTER COLUMN owner DROP DEFAULT;
UPDATE threads SET owner = user_id WHERE user_id IS NOT NULL;
ALTER TABLE threads
    ADD CONSTRAINT threads_owner_check CHECK (user_id IS NULL OR user_id = owner);
ALTER TABLE threads DROP CONSTRAINT threads_pkey;
ALTER TABLE threads ADD CONSTRAINT threads_pkey PRIMARY KEY (thread_id, owner);

ALTER TABLE checkpoints ADD COLUMN owner uuid NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE checkpoints ALTER COLUMN owner DROP DEFAULT;
UPDATE checkpoints AS c SET owner = t.owner
  FROM threads AS t
 WHERE t.thread_id = c.thread_id AND t.user_id IS NOT NULL;
ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_pkey;
ALTER TABLE checkpoints
    ADD CONSTRAINT checkpoints_pkey PRIMARY KEY (thread_id, owner, checkpoint_ns, checkpoint_id);

ALTER TABLE checkpoint_blobs ADD COLUMN owner uuid NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE checkpoint_blobs ALTER COLUMN owner DROP DEFAULT;
UPDATE checkpoint_blobs AS b SET owner = t.owner
  FROM threads AS t
 WHERE t.thread_id = b.thread_id AND t.user_id IS NOT NULL;
ALTER TABLE checkpoint_blobs DROP CONSTRAINT checkpoint_blobs_pkey;
ALTER TABLE checkpoint_blobs
    ADD CONSTRAINT checkpoint_blobs_pkey
        PRIMARY KEY (thread_id, owner, checkpoint_ns, channel, version);

ALTER TABLE checkpoint_writes ADD COLUMN owner uuid NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE checkpoint_writes ALTER COLUMN owner DROP DEFAULT;
UPDATE checkpoint_writes AS w SET owner = t.owner
  FROM threads AS t
 WHERE t.thread_id = w.thread_id AND t.user_id IS NOT NULL;
ALTER TABLE checkpoint_writes DROP CONSTRAINT checkpoint_writes_pkey;
ALTER TABLE checkpoint_writes
    ADD CONSTRAINT checkpoint_writes_pkey
        PRIMARY KEY (thread_id, owner, checkpoint_ns, checkpoint_id, task_id, idx);

-- Deleting threads deletes their owner's rows of the thread, not another owner's.
CREATE OR REPLACE FUNCTION mnemo_delete_thread_rows() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    DELETE FROM checkpoint_writes AS w USING deleted_threads AS d
     WHERE w.thread_id = d.thread_id AND w.owner = d.owner;
    DELETE FROM checkpoint_blobs AS b USING deleted_threads AS d
     WHERE b.thread_id = d.thread_id AND b.owner = d.owner;
    DELETE FROM checkpoints AS c USING deleted_threads AS d
     WHERE c.thread_id = d.thread_id AND c.owner = d.owner;
    RETURN NULL;
END
$$;

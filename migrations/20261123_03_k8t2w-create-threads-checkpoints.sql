-- Agent threads and their checkpoints (LangGraph's checkpoint contract, and JSON state for
-- other agents): checkpoints, channel values by version (blobs) and pending writes, all keyed
-- thread-first. Deleting a thread deletes the rest (the trigger at the end).
--
-- The three checkpoint tables have no foreign key to threads, on purpose: they take several
-- rows per agent step, and a foreign key costs each row a lookup and a share lock on its
-- thread's row (a MultiXact when parallel tasks save at once). Their rows are written only by
-- the statements in queries/checkpoints.sql, which create the thread row with a thread's
-- checkpoints; pending writes may be saved before their checkpoint commits.
-- depends: 20261123_02_c4m9x-create-conversations-messages

CREATE TABLE threads (
    thread_id       text        PRIMARY KEY,
    -- The Mnemo user owning the thread; NULL for threads written by a saver with no user.
    user_id         uuid        REFERENCES users (id) ON DELETE CASCADE,
    -- The conversation this thread's agent serves, if any.
    conversation_id uuid        REFERENCES conversations (id) ON DELETE SET NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT threads_metadata_check CHECK (jsonb_typeof(metadata) = 'object')
);

-- list_threads / list_threads_before: the caller's threads, most recently updated first.
CREATE INDEX threads_user_updated_idx ON threads (user_id, updated_at DESC, thread_id DESC);

CREATE TABLE checkpoints (
    thread_id            text        NOT NULL,
    checkpoint_ns        text        NOT NULL DEFAULT '',
    checkpoint_id        text        NOT NULL,
    parent_checkpoint_id text,
    -- The checkpoint without the channel values stored as blobs (None, str, int, float and
    -- bool values stay inline, as do the values of JSON checkpoints).
    checkpoint           jsonb       NOT NULL,
    metadata             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT checkpoints_pkey PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);

-- list_checkpoints_by_metadata: history filtered by metadata containment (@>).
CREATE INDEX checkpoints_metadata_gin ON checkpoints USING gin (metadata jsonb_path_ops);
-- delete_checkpoints_for_runs: checkpoints by the run that wrote them.
CREATE INDEX checkpoints_run_id_idx ON checkpoints ((metadata ->> 'run_id'))
    WHERE metadata ? 'run_id';

CREATE TABLE checkpoint_blobs (
    thread_id     text  NOT NULL,
    checkpoint_ns text  NOT NULL DEFAULT '',
    channel       text  NOT NULL,
    version       text  NOT NULL,
    type          text  NOT NULL,
    blob          bytea,
    CONSTRAINT checkpoint_blobs_pkey PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
);

-- Writes may be saved before their checkpoint commits (LangGraph saves a superstep's writes
-- in the background): they are keyed by the checkpoint they follow, without a reference.
CREATE TABLE checkpoint_writes (
    thread_id     text    NOT NULL,
    checkpoint_ns text    NOT NULL DEFAULT '',
    checkpoint_id text    NOT NULL,
    task_id       text    NOT NULL,
    idx           integer NOT NULL,
    channel       text    NOT NULL,
    type          text,
    blob          bytea   NOT NULL,
    task_path     text    NOT NULL DEFAULT '',
    CONSTRAINT checkpoint_writes_pkey
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);

-- Deleting threads (delete_thread..., or their user's deletion, by cascade) deletes their
-- checkpoints, blobs and writes: once per statement, however many threads it deleted.
CREATE FUNCTION mnemo_delete_thread_rows() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    DELETE FROM checkpoint_writes AS w USING deleted_threads AS d WHERE w.thread_id = d.thread_id;
    DELETE FROM checkpoint_blobs AS b USING deleted_threads AS d WHERE b.thread_id = d.thread_id;
    DELETE FROM checkpoints AS c USING deleted_threads AS d WHERE c.thread_id = d.thread_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER threads_delete_rows
    AFTER DELETE ON threads
    REFERENCING OLD TABLE AS deleted_threads
    FOR EACH STATEMENT EXECUTE FUNCTION mnemo_delete_thread_rows();

-- A conversation can name the thread of its agent.
ALTER TABLE conversations ADD COLUMN thread_id text;

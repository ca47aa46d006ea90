-- Checkpoints, their channel blobs and pending writes. Every query here is unscoped: it reads
-- or writes the checkpoints of the owner its caller passes ($1 owner, or each row's owner in
-- upsert_checkpoint_batch) and trusts it. The LangGraph saver (trusted server-side code)
-- passes the owner it is configured with; the HTTP use cases pass the caller, in the
-- transaction of a caller-scoped query of threads.sql that checked the thread is theirs.
--
-- Thread ids are scoped per owner: every row has its thread's owner (a Mnemo user's id, or
-- the nil UUID for threads a saver wrote without a user), every key starts with
-- (thread_id, owner), and every query here filters by the owner its caller passes ($1, or
-- each row's owner in upsert_checkpoint_batch). Two owners' threads of one id never meet.
--
-- A checkpoint row holds the checkpoint without the channel values stored as blobs; a blob is
-- keyed by (thread, owner, namespace, channel, version), so a value that did not change
-- between checkpoints is stored once. Pending writes are keyed by the checkpoint they follow.

-- name: upsert_checkpoint_batch
-- Save checkpoints (with their new channel blobs) and pending writes, of one thread or many,
-- of one owner or many, in one statement: one round trip and one commit for every save the
-- saver has waiting (its group commit, dal/langgraph/group_commit.py), or for a single one.
-- - Each checkpoint's thread row (thread_id, owner) is created, or its updated_at bumped if
--   it is more than a second old (see below); a new one's user_id is its owner if that is a
--   user's id; the checkpoint is inserted, or replaced if its id exists.
-- - A blob whose version is already stored is kept: a version is one value.
-- - A write already saved (same task and index) is kept as it was (a retried task writes the
--   same thing), unless it comes from a call whose writes all go to special channels (error,
--   interrupt, resume...): their fixed negative indexes mean "the latest one", so they
--   replace. Writes need no thread row: they may be saved before their checkpoint commits.
-- The caller sends each checkpoint and write key at most once (dal/gateways/checkpoints.py
-- folds repeats as running the saves one by one would). Rows come as JSON arrays of objects
-- (one parameter each, however many rows: cheaper to send than an array per column), the
-- bytes of blobs and writes as bytea arrays in the same order.
-- returns: value
-- uses: threads_pkey, checkpoints_pkey, checkpoint_blobs_pkey, checkpoint_writes_pkey
-- $1 checkpoints jsonb       [{thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata}]
-- $2 blobs jsonb             [{thread_id, owner, checkpoint_ns, channel, version, type}]
-- $3 blob_values bytea[]     the blobs' bytes, in the order of $2
-- $4 writes jsonb            [{thread_id, owner, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, replace}]
-- $5 write_values bytea[]    the writes' bytes, in the order of $4
WITH new_checkpoints AS (
    SELECT n.thread_id, n.owner, n.checkpoint_ns, n.checkpoint_id, n.parent_checkpoint_id,
           n.checkpoint, n.metadata
      FROM jsonb_to_recordset($1::jsonb)
           AS n(thread_id text, owner uuid, checkpoint_ns text, checkpoint_id text,
                parent_checkpoint_id text, checkpoint jsonb, metadata jsonb)
), thread AS (
    INSERT INTO threads AS t (thread_id, owner, user_id)
    SELECT DISTINCT ON (n.thread_id, n.owner) n.thread_id, n.owner, u.id
      FROM new_checkpoints AS n
      LEFT JOIN users AS u ON u.id = n.owner
     ORDER BY n.thread_id, n.owner
    -- updated_at is indexed (threads_user_updated_idx), so bumping it is never a HOT update:
    -- a new row version and an entry in each index of threads, for every save. A graph saves
    -- several checkpoints a second; the list of threads needs updated_at to the second, not
    -- to the save. The row is locked all the same (ON CONFLICT locks the rows it does not
    -- update): a prune that locks the thread's row still waits for the saves under way.
    ON CONFLICT (thread_id, owner) DO UPDATE
       SET updated_at = now(),
           user_id = coalesce(t.user_id, excluded.user_id)
     WHERE t.updated_at < now() - interval '1 second'
        OR (t.user_id IS NULL AND excluded.user_id IS NOT NULL)
), blobs AS (
    INSERT INTO checkpoint_blobs (thread_id, owner, checkpoint_ns, channel, version, type, blob)
    SELECT b.thread_id, b.owner, b.checkpoint_ns, b.channel, b.version, b.type, v.blob
      FROM ROWS FROM (jsonb_to_recordset($2::jsonb)
                      AS (thread_id text, owner uuid, checkpoint_ns text, channel text,
                          version text, type text))
           WITH ORDINALITY AS b(thread_id, owner, checkpoint_ns, channel, version, type, i)
      JOIN unnest($3::bytea[]) WITH ORDINALITY AS v(blob, i) USING (i)
    ON CONFLICT (thread_id, owner, checkpoint_ns, channel, version) DO NOTHING
), new_writes AS (
    SELECT w.thread_id, w.owner, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.task_path,
           w.idx, w.channel, w.type, v.blob, w.replace
      FROM ROWS FROM (jsonb_to_recordset($4::jsonb)
                      AS (thread_id text, owner uuid, checkpoint_ns text, checkpoint_id text,
                          task_id text, task_path text, idx int4, channel text, type text,
                          replace bool))
           WITH ORDINALITY AS w(thread_id, owner, checkpoint_ns, checkpoint_id, task_id,
                                task_path, idx, channel, type, replace, i)
      JOIN unnest($5::bytea[]) WITH ORDINALITY AS v(blob, i) USING (i)
), kept_writes AS (
    INSERT INTO checkpoint_writes
           (thread_id, owner, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel,
            type, blob)
    SELECT w.thread_id, w.owner, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.task_path,
           w.idx, w.channel, w.type, w.blob
      FROM new_writes AS w
     WHERE NOT w.replace
    ON CONFLICT (thread_id, owner, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING
), replaced_writes AS (
    INSERT INTO checkpoint_writes AS cw
           (thread_id, owner, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel,
            type, blob)
    SELECT w.thread_id, w.owner, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.task_path,
           w.idx, w.channel, w.type, w.blob
      FROM new_writes AS w
     WHERE w.replace
    ON CONFLICT (thread_id, owner, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE
       SET channel = excluded.channel,
           type = excluded.type,
           blob = excluded.blob,
           task_path = excluded.task_path
), saved AS (
    INSERT INTO checkpoints AS c
           (thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint,
            metadata)
    SELECT n.thread_id, n.owner, n.checkpoint_ns, n.checkpoint_id, n.parent_checkpoint_id,
           n.checkpoint, n.metadata
      FROM new_checkpoints AS n
    ON CONFLICT (thread_id, owner, checkpoint_ns, checkpoint_id) DO UPDATE
       SET checkpoint = excluded.checkpoint,
           metadata = excluded.metadata
    RETURNING 1
)
SELECT count(*) AS saved
  FROM saved;

-- fragment: checkpoint_tuple
-- The one read path of a checkpoint: each checkpoint of "picked" with its channel blobs and
-- its pending writes (in the order LangGraph applies them: task_path, task_id, idx), in one
-- round trip. Each query that includes it defines picked, a CTE with the columns thread_id,
-- owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint and metadata of the
-- checkpoints it reads. Referenced once, the CTE is inlined (PostgreSQL 12+): the plan is
-- that of picked's own query, read by its index, with the lookups below per row.
SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.checkpoint,
       c.metadata, b.blob_channels, b.blob_types, b.blob_values, w.write_task_ids,
       w.write_channels, w.write_types, w.write_values
  FROM picked AS c
  LEFT JOIN LATERAL (
        SELECT array_agg(bl.channel) AS blob_channels, array_agg(bl.type) AS blob_types,
               array_agg(bl.blob) AS blob_values
          FROM jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
         CROSS JOIN LATERAL (
                -- One primary-key probe per channel version. LIMIT 1 (the key is unique)
                -- keeps the planner from turning this into a hash join over every blob of
                -- every version of the thread, which grows with its history.
                SELECT x.channel, x.type, x.blob
                  FROM checkpoint_blobs AS x
                 WHERE x.thread_id = c.thread_id AND x.owner = c.owner
                   AND x.checkpoint_ns = c.checkpoint_ns
                   AND x.channel = v.key AND x.version = v.value
                 LIMIT 1
               ) AS bl
       ) AS b ON true
  LEFT JOIN LATERAL (
        SELECT array_agg(cw.task_id ORDER BY cw.task_path, cw.task_id, cw.idx) AS write_task_ids,
               array_agg(cw.channel ORDER BY cw.task_path, cw.task_id, cw.idx) AS write_channels,
               array_agg(cw.type ORDER BY cw.task_path, cw.task_id, cw.idx) AS write_types,
               array_agg(cw.blob ORDER BY cw.task_path, cw.task_id, cw.idx) AS write_values
          FROM checkpoint_writes AS cw
         WHERE cw.thread_id = c.thread_id AND cw.owner = c.owner
           AND cw.checkpoint_ns = c.checkpoint_ns
           AND cw.checkpoint_id = c.checkpoint_id
       ) AS w ON true

-- The reads of one checkpoint (the gateway get_checkpoint picks one) and of many (the gateway
-- list_checkpoints, BaseCheckpointSaver.list: one query per access path, each served by an
-- index), all named after their gateway; each returns checkpoint_tuple's rows.

-- name: get_checkpoint_by_id
-- One checkpoint, by id, with its channel blobs and pending writes.
-- returns: CheckpointRow
-- uses: checkpoints_pkey, checkpoint_blobs_pkey, checkpoint_writes_pkey
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
-- $3 checkpoint_ns text
-- $4 checkpoint_id text
WITH picked AS (
    SELECT thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint,
           metadata
      FROM checkpoints
     WHERE thread_id = $2
       AND owner = $1
       AND checkpoint_ns = $3
       AND checkpoint_id = $4
)
{{checkpoint_tuple}};

-- name: get_checkpoint_latest
-- The newest checkpoint of a thread's namespace (ids grow with time), as get_checkpoint_by_id.
-- returns: CheckpointRow
-- uses: checkpoints_pkey (backward scan), checkpoint_blobs_pkey, checkpoint_writes_pkey
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
-- $3 checkpoint_ns text
WITH picked AS (
    SELECT thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
           checkpoint, metadata
      FROM checkpoints
     WHERE thread_id = $2
       AND owner = $1
       AND checkpoint_ns = $3
     ORDER BY checkpoint_id DESC
     LIMIT 1
)
{{checkpoint_tuple}};

-- name: list_checkpoints_in_namespace
-- A thread namespace's checkpoints, newest first, with blobs and pending writes.
-- returns: CheckpointRow
-- uses: checkpoints_pkey (backward scan)
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
-- $3 checkpoint_ns text
-- $4 page_size int8                NULL: all
WITH picked AS (
    SELECT thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
           checkpoint, metadata
      FROM checkpoints
     WHERE thread_id = $2
       AND owner = $1
       AND checkpoint_ns = $3
     ORDER BY checkpoint_id DESC
     LIMIT $4
)
{{checkpoint_tuple}}
 ORDER BY c.checkpoint_id DESC;

-- name: list_checkpoints_in_namespace_before
-- The page of a thread namespace's checkpoints just older than a checkpoint id, newest first.
-- returns: CheckpointRow
-- uses: checkpoints_pkey (backward scan from the cursor)
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
-- $3 checkpoint_ns text
-- $4 before_checkpoint_id text
-- $5 page_size int8                NULL: all
WITH picked AS (
    SELECT thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
           checkpoint, metadata
      FROM checkpoints
     WHERE thread_id = $2
       AND owner = $1
       AND checkpoint_ns = $3
       AND checkpoint_id < $4
     ORDER BY checkpoint_id DESC
     LIMIT $5
)
{{checkpoint_tuple}}
 ORDER BY c.checkpoint_id DESC;

-- name: list_checkpoints_by_metadata
-- A thread namespace's checkpoints whose metadata contains $4, newest first. On a long thread
-- whose filter matches few checkpoints the planner can use the GIN index (with the primary
-- key: BitmapAnd); else the primary key alone, filtering the thread's rows.
-- returns: CheckpointRow
-- uses: checkpoints_pkey, checkpoints_metadata_gin
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
-- $3 checkpoint_ns text
-- $4 metadata_filter jsonb
-- $5 page_size int8                NULL: all
WITH picked AS (
    SELECT thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
           checkpoint, metadata
      FROM checkpoints
     WHERE thread_id = $2
       AND owner = $1
       AND checkpoint_ns = $3
       AND metadata @> $4
     ORDER BY checkpoint_id DESC
     LIMIT $5
)
{{checkpoint_tuple}}
 ORDER BY c.checkpoint_id DESC;

-- name: list_checkpoints_by_metadata_before
-- The next page of list_checkpoints_by_metadata: older than a checkpoint id. A query of its
-- own: written "($5 IS NULL OR checkpoint_id < $5)", the cursor was no index condition in a
-- generic plan, and a page deep in a long history read the thread from its newest row.
-- returns: CheckpointRow
-- uses: checkpoints_pkey (backward scan from the cursor), checkpoints_metadata_gin
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
-- $3 checkpoint_ns text
-- $4 metadata_filter jsonb
-- $5 before_checkpoint_id text
-- $6 page_size int8                NULL: all
WITH picked AS (
    SELECT thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
           checkpoint, metadata
      FROM checkpoints
     WHERE thread_id = $2
       AND owner = $1
       AND checkpoint_ns = $3
       AND checkpoint_id < $5
       AND metadata @> $4
     ORDER BY checkpoint_id DESC
     LIMIT $6
)
{{checkpoint_tuple}}
 ORDER BY c.checkpoint_id DESC;

-- name: list_checkpoints_of_thread
-- A thread's checkpoints in every namespace, newest first: LangGraph's
-- saver.list({"configurable": {"thread_id": ...}}) (no checkpoint_ns), as its documentation
-- shows it. The primary key finds the thread's rows (thread_id, owner: its first columns);
-- they are sorted by id across namespaces there, a sort of one thread's checkpoints, never
-- of every thread's (which the catch-all list_checkpoints_of_owner_filtered does in a generic
-- plan).
-- returns: CheckpointRow
-- uses: checkpoints_pkey
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
-- $3 page_size int8                NULL: all
WITH picked AS (
    SELECT thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
           checkpoint, metadata
      FROM checkpoints
     WHERE thread_id = $2
       AND owner = $1
     ORDER BY checkpoint_id DESC
     LIMIT $3
)
{{checkpoint_tuple}}
 ORDER BY c.checkpoint_id DESC;

-- name: list_checkpoints_of_thread_before
-- The next page of list_checkpoints_of_thread: older than a checkpoint id (an index
-- condition: a page deep in the history does not read the newer checkpoints).
-- returns: CheckpointRow
-- uses: checkpoints_pkey
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
-- $3 before_checkpoint_id text
-- $4 page_size int8                NULL: all
WITH picked AS (
    SELECT thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
           checkpoint, metadata
      FROM checkpoints
     WHERE thread_id = $2
       AND owner = $1
       AND checkpoint_id < $3
     ORDER BY checkpoint_id DESC
     LIMIT $4
)
{{checkpoint_tuple}}
 ORDER BY c.checkpoint_id DESC;

-- name: list_checkpoints_of_thread_filtered
-- Any other search within one thread (dal/gateways/checkpoints.py picks): an exact checkpoint
-- id, a filter across its namespaces... The conditions are optional ("$n IS NULL OR ..."),
-- but the thread is not: in a generic plan the primary key's first columns (thread_id,
-- owner) are an index condition, so the search reads this thread's rows, never another's (a
-- custom plan may prefer the GIN index for a filter that few checkpoints match).
-- returns: CheckpointRow
-- uses: checkpoints_pkey, checkpoints_metadata_gin
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
-- $3 checkpoint_ns text            NULL: every namespace
-- $4 checkpoint_id text            NULL: any
-- $5 before_checkpoint_id text     NULL: from the newest
-- $6 metadata_filter jsonb         NULL: no filter
-- $7 page_size int8                NULL: all
WITH picked AS (
    SELECT thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
           checkpoint, metadata
      FROM checkpoints
     WHERE thread_id = $2
       AND owner = $1
       AND ($3::text IS NULL OR checkpoint_ns = $3)
       AND ($4::text IS NULL OR checkpoint_id = $4)
       AND ($5::text IS NULL OR checkpoint_id < $5)
       AND ($6::jsonb IS NULL OR metadata @> $6)
     ORDER BY checkpoint_id DESC
     LIMIT $7
)
{{checkpoint_tuple}}
 ORDER BY c.checkpoint_id DESC;

-- name: list_checkpoints_of_owner_by_metadata
-- An owner's checkpoints of every thread whose metadata contains $2, newest first: LangGraph's
-- saver.list(None, filter=...), e.g. every checkpoint of a run ({"run_id": ...}). The GIN
-- index on metadata finds them, however many threads the owner has (the primary key starts
-- with thread_id: it cannot).
-- returns: CheckpointRow
-- uses: checkpoints_metadata_gin
-- $1 owner uuid                 the threads' owner: a user's id, or the nil UUID
-- $2 metadata_filter jsonb
-- $3 page_size int8                NULL: all
WITH picked AS (
    SELECT thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
           checkpoint, metadata
      FROM checkpoints
     WHERE metadata @> $2
       AND owner = $1
     ORDER BY checkpoint_id DESC
     LIMIT $3
)
{{checkpoint_tuple}}
 ORDER BY c.checkpoint_id DESC;

-- name: list_checkpoints_of_owner_filtered
-- The general search across an owner's threads behind BaseCheckpointSaver.list (no thread
-- id) when it is not list_checkpoints_of_owner_by_metadata: a namespace of every thread, an
-- exact checkpoint id, a cursor. Not a hot path, and its generic plan reads every checkpoint of
-- the table ("$n IS NULL OR ..." is no index condition): a common call gets a query of its
-- own instead.
-- returns: CheckpointRow
-- uses: checkpoints_metadata_gin
-- $1 owner uuid                 the threads' owner: a user's id, or the nil UUID
-- $2 checkpoint_ns text            NULL: every namespace
-- $3 checkpoint_id text            NULL: any
-- $4 before_checkpoint_id text     NULL: from the newest
-- $5 metadata_filter jsonb         NULL: no filter
-- $6 page_size int8                NULL: all
WITH picked AS (
    SELECT thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
           checkpoint, metadata
      FROM checkpoints
     WHERE owner = $1
       AND ($2::text IS NULL OR checkpoint_ns = $2)
       AND ($3::text IS NULL OR checkpoint_id = $3)
       AND ($4::text IS NULL OR checkpoint_id < $4)
       AND ($5::jsonb IS NULL OR metadata @> $5)
     ORDER BY checkpoint_id DESC
     LIMIT $6
)
{{checkpoint_tuple}}
 ORDER BY c.checkpoint_id DESC;

-- name: get_latest_checkpoint_head
-- What a new checkpoint needs of its parent, the newest checkpoint of a thread namespace: its
-- id, channel versions and step (no values). Over HTTP the owner is the caller, whose thread
-- upsert_thread_of_user has just locked.
-- returns: CheckpointHead
-- uses: checkpoints_pkey (backward scan)
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
-- $3 checkpoint_ns text
SELECT checkpoint_id, checkpoint -> 'channel_versions' AS channel_versions,
       metadata -> 'step' AS step
  FROM checkpoints
 WHERE thread_id = $2
   AND owner = $1
   AND checkpoint_ns = $3
 ORDER BY checkpoint_id DESC
 LIMIT 1;

-- name: delete_checkpoints_for_runs
-- Delete the checkpoints these runs wrote in an owner's threads, with their pending writes,
-- in one statement. Blobs stay: other checkpoints may share them (prune reclaims what
-- nothing references).
-- returns: value
-- uses: checkpoints_run_id_hash, checkpoint_writes_pkey
-- $1 owner uuid                 the threads' owner: a user's id, or the nil UUID
-- $2 run_ids text[]
WITH deleted AS (
    DELETE FROM checkpoints
     WHERE metadata ? 'run_id'
       AND metadata ->> 'run_id' = ANY($2::text[])
       AND owner = $1
    RETURNING thread_id, owner, checkpoint_ns, checkpoint_id
), writes AS (
    DELETE FROM checkpoint_writes AS cw
     USING deleted AS d
     WHERE cw.thread_id = d.thread_id
       AND cw.owner = d.owner
       AND cw.checkpoint_ns = d.checkpoint_ns
       AND cw.checkpoint_id = d.checkpoint_id
)
SELECT count(*) AS deleted
  FROM deleted;

-- name: copy_thread_of_owner_all
-- Copy every checkpoint, blob and write of a thread to another thread of the same owner, in
-- one statement; the new thread gets the source's metadata (not its conversation: a
-- conversation names one thread). Rows the target already has are kept. Returns how many
-- checkpoints were copied (0: no such source).
-- returns: value
-- uses: threads_pkey, checkpoints_pkey, checkpoint_blobs_pkey, checkpoint_writes_pkey
-- $1 owner uuid                 the threads' owner: a user's id, or the nil UUID
-- $2 source_thread_id text
-- $3 target_thread_id text
WITH thread AS (
    INSERT INTO threads (thread_id, owner, user_id, metadata)
    SELECT $3, s.owner, s.user_id, s.metadata
      FROM threads AS s
     WHERE s.thread_id = $2
       AND s.owner = $1
    ON CONFLICT (thread_id, owner) DO UPDATE SET updated_at = now()
    RETURNING thread_id, owner
), blobs AS (
    INSERT INTO checkpoint_blobs (thread_id, owner, checkpoint_ns, channel, version, type, blob)
    SELECT thread.thread_id, thread.owner, b.checkpoint_ns, b.channel, b.version, b.type,
           b.blob
      FROM checkpoint_blobs AS b, thread
     WHERE b.thread_id = $2
       AND b.owner = $1
    ON CONFLICT DO NOTHING
), writes AS (
    INSERT INTO checkpoint_writes
           (thread_id, owner, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel,
            type, blob)
    SELECT thread.thread_id, thread.owner, w.checkpoint_ns, w.checkpoint_id, w.task_id,
           w.task_path, w.idx, w.channel, w.type, w.blob
      FROM checkpoint_writes AS w, thread
     WHERE w.thread_id = $2
       AND w.owner = $1
    ON CONFLICT DO NOTHING
), copied AS (
    INSERT INTO checkpoints
           (thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint,
            metadata)
    SELECT thread.thread_id, thread.owner, c.checkpoint_ns, c.checkpoint_id,
           c.parent_checkpoint_id, c.checkpoint, c.metadata
      FROM checkpoints AS c, thread
     WHERE c.thread_id = $2
       AND c.owner = $1
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) AS copied
  FROM copied;

-- name: copy_thread_of_owner_latest
-- Copy only the newest checkpoint of each namespace of a thread, with the blobs it
-- references and its pending writes, to another thread of the same owner (which becomes its
-- root: no parent). Bounded by the size of one checkpoint, however long the history.
-- Returns how many checkpoints were copied.
-- returns: value
-- uses: threads_pkey, checkpoints_pkey, checkpoint_blobs_pkey, checkpoint_writes_pkey
-- $1 owner uuid                 the threads' owner: a user's id, or the nil UUID
-- $2 source_thread_id text
-- $3 target_thread_id text
WITH latest AS (
    SELECT DISTINCT ON (c.checkpoint_ns) c.checkpoint_ns, c.checkpoint_id, c.checkpoint,
           c.metadata
      FROM checkpoints AS c
     WHERE c.thread_id = $2
       AND c.owner = $1
     ORDER BY c.checkpoint_ns, c.checkpoint_id DESC
), thread AS (
    INSERT INTO threads (thread_id, owner, user_id, metadata)
    SELECT $3, s.owner, s.user_id, s.metadata
      FROM threads AS s
     WHERE s.thread_id = $2
       AND s.owner = $1
    ON CONFLICT (thread_id, owner) DO UPDATE SET updated_at = now()
    RETURNING thread_id, owner
), blobs AS (
    INSERT INTO checkpoint_blobs (thread_id, owner, checkpoint_ns, channel, version, type, blob)
    SELECT thread.thread_id, thread.owner, b.checkpoint_ns, b.channel, b.version, b.type,
           b.blob
      FROM latest AS l
     CROSS JOIN thread
     CROSS JOIN LATERAL jsonb_each_text(l.checkpoint -> 'channel_versions') AS v
      JOIN checkpoint_blobs AS b
        ON b.thread_id = $2 AND b.owner = $1 AND b.checkpoint_ns = l.checkpoint_ns
       AND b.channel = v.key AND b.version = v.value
    ON CONFLICT DO NOTHING
), writes AS (
    INSERT INTO checkpoint_writes
           (thread_id, owner, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel,
            type, blob)
    SELECT thread.thread_id, thread.owner, w.checkpoint_ns, w.checkpoint_id, w.task_id,
           w.task_path, w.idx, w.channel, w.type, w.blob
      FROM latest AS l
     CROSS JOIN thread
      JOIN checkpoint_writes AS w
        ON w.thread_id = $2 AND w.owner = $1 AND w.checkpoint_ns = l.checkpoint_ns
       AND w.checkpoint_id = l.checkpoint_id
    ON CONFLICT DO NOTHING
), copied AS (
    INSERT INTO checkpoints
           (thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint,
            metadata)
    SELECT thread.thread_id, thread.owner, l.checkpoint_ns, l.checkpoint_id, NULL,
           l.checkpoint, l.metadata
      FROM latest AS l, thread
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) AS copied
  FROM copied;

-- name: find_delta_channel_threads
-- Which of these threads of an owner use a LangGraph DeltaChannel (its checkpoints carry
-- snapshot counters): keep_latest would cut the chain such a channel is rebuilt from.
-- returns: columns thread_id
-- uses: checkpoints_pkey
-- $1 owner uuid                 the threads' owner: a user's id, or the nil UUID
-- $2 thread_ids text[]
SELECT DISTINCT thread_id
  FROM checkpoints
 WHERE thread_id = ANY($2::text[])
   AND owner = $1
   AND metadata ? 'counters_since_delta_snapshot';

-- name: delete_checkpoints_of_threads
-- Prune "delete": every checkpoint, blob and write of these threads of an owner, in one
-- statement; the thread rows (metadata) stay. Returns how many checkpoints
-- went.
-- returns: value
-- uses: checkpoints_pkey, checkpoint_blobs_pkey, checkpoint_writes_pkey
-- $1 owner uuid                 the threads' owner: a user's id, or the nil UUID
-- $2 thread_ids text[]
WITH blobs AS (
    DELETE FROM checkpoint_blobs WHERE thread_id = ANY($2::text[]) AND owner = $1
), writes AS (
    DELETE FROM checkpoint_writes WHERE thread_id = ANY($2::text[]) AND owner = $1
), deleted AS (
    DELETE FROM checkpoints WHERE thread_id = ANY($2::text[]) AND owner = $1
    RETURNING 1
)
SELECT count(*) AS deleted
  FROM deleted;

-- name: delete_checkpoints_except_latest
-- Prune "keep_latest", in one statement: per thread of the owner and namespace keep the
-- newest checkpoint (now a root: no parent), delete the others with their writes, and delete
-- the blobs no kept checkpoint references. Everything reads one snapshot, so a checkpoint
-- being saved meanwhile is neither seen nor touched. Returns how many checkpoints went.
-- returns: value
-- uses: checkpoints_pkey, checkpoint_blobs_pkey, checkpoint_writes_pkey
-- $1 owner uuid                 the threads' owner: a user's id, or the nil UUID
-- $2 thread_ids text[]
WITH latest AS (
    SELECT DISTINCT ON (thread_id, checkpoint_ns) thread_id, checkpoint_ns, checkpoint_id,
           checkpoint
      FROM checkpoints
     WHERE thread_id = ANY($2::text[])
       AND owner = $1
     ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC
), deleted AS (
    DELETE FROM checkpoints AS c
     WHERE c.thread_id = ANY($2::text[])
       AND c.owner = $1
       AND NOT EXISTS (
            SELECT 1 FROM latest AS l
             WHERE l.thread_id = c.thread_id AND l.checkpoint_ns = c.checkpoint_ns
               AND l.checkpoint_id = c.checkpoint_id)
    RETURNING c.thread_id, c.checkpoint_ns, c.checkpoint_id
), writes AS (
    DELETE FROM checkpoint_writes AS cw
     USING deleted AS d
     WHERE cw.thread_id = d.thread_id AND cw.owner = $1 AND cw.checkpoint_ns = d.checkpoint_ns
       AND cw.checkpoint_id = d.checkpoint_id
), blobs AS (
    DELETE FROM checkpoint_blobs AS b
     WHERE b.thread_id = ANY($2::text[])
       AND b.owner = $1
       AND NOT EXISTS (
            SELECT 1 FROM latest AS l
             WHERE l.thread_id = b.thread_id AND l.checkpoint_ns = b.checkpoint_ns
               AND l.checkpoint -> 'channel_versions' ->> b.channel = b.version)
), roots AS (
    UPDATE checkpoints AS c
       SET parent_checkpoint_id = NULL
      FROM latest AS l
     WHERE c.thread_id = l.thread_id AND c.owner = $1 AND c.checkpoint_ns = l.checkpoint_ns
       AND c.checkpoint_id = l.checkpoint_id AND c.parent_checkpoint_id IS NOT NULL
)
SELECT count(*) AS deleted
  FROM deleted;

-- name: list_delta_channel_history
-- What LangGraph needs to rebuild DeltaChannels at a checkpoint
-- (BaseCheckpointSaver.get_delta_channel_history), in one statement instead of one read per
-- ancestor. Walks the parent chain up from the checkpoint's parent; each channel's walk stops
-- at the first ancestor that stores a value of it (inline, or a blob at the ancestor's
-- version of the channel: what get_checkpoint_by_id would return), its seed. Returns the writes to
-- each channel made on that path (the ancestors' pending writes, the seed's included) and the
-- seeds: oldest ancestor first, writes in LangGraph's replay order (task_path, task_id, idx).
-- The walk follows parents, not ids: on a forked thread only the checkpoint's own ancestors
-- count. A seed row has no task_id; its value is the blob, else inline_value.
-- returns: DeltaHistoryRow
-- uses: checkpoints_pkey, checkpoint_blobs_pkey, checkpoint_writes_pkey
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
-- $3 checkpoint_ns text
-- $4 checkpoint_id text          NULL: the newest checkpoint of the namespace
-- $5 channels text[]
WITH RECURSIVE chain (checkpoint_id, parent_checkpoint_id, checkpoint, depth, wanted) AS (
    SELECT p.checkpoint_id, p.parent_checkpoint_id, p.checkpoint, 1, $5::text[]
      FROM checkpoints AS t
      JOIN checkpoints AS p
        ON p.thread_id = t.thread_id AND p.owner = t.owner AND p.checkpoint_ns = t.checkpoint_ns
       AND p.checkpoint_id = t.parent_checkpoint_id
     WHERE t.thread_id = $2
       AND t.owner = $1
       AND t.checkpoint_ns = $3
       AND t.checkpoint_id = coalesce($4, (
            SELECT max(m.checkpoint_id)
              FROM checkpoints AS m
             WHERE m.thread_id = $2
               AND m.owner = $1
               AND m.checkpoint_ns = $3))
    UNION ALL
    SELECT p.checkpoint_id, p.parent_checkpoint_id, p.checkpoint, c.depth + 1, n.wanted
      FROM chain AS c
     CROSS JOIN LATERAL (
            -- The channels still without a seed once this ancestor is read.
            SELECT ARRAY(
                SELECT ch
                  FROM unnest(c.wanted) AS ch
                 WHERE NOT c.checkpoint -> 'channel_values' ? ch
                   AND NOT EXISTS (
                        SELECT 1
                          FROM checkpoint_blobs AS b
                         WHERE b.thread_id = $2 AND b.owner = $1 AND b.checkpoint_ns = $3
                           AND b.channel = ch
                           AND b.version = c.checkpoint -> 'channel_versions' ->> ch
                           AND b.type <> 'empty' AND b.blob IS NOT NULL)
            ) AS wanted
       ) AS n
      JOIN checkpoints AS p
        ON p.thread_id = $2 AND p.owner = $1 AND p.checkpoint_ns = $3
       AND p.checkpoint_id = c.parent_checkpoint_id
     WHERE cardinality(n.wanted) > 0
)
SELECT c.depth, w.channel, w.task_path, w.task_id, w.idx, w.type, w.blob AS value,
       NULL::jsonb AS inline_value
  FROM chain AS c
  JOIN checkpoint_writes AS w
    ON w.thread_id = $2 AND w.owner = $1 AND w.checkpoint_ns = $3
   AND w.checkpoint_id = c.checkpoint_id
   AND w.channel = ANY(c.wanted)
UNION ALL
SELECT c.depth, s.channel, NULL, NULL, NULL, b.type, b.blob,
       c.checkpoint -> 'channel_values' -> s.channel
  FROM chain AS c
 CROSS JOIN unnest(c.wanted) AS s(channel)
  LEFT JOIN checkpoint_blobs AS b
    ON b.thread_id = $2 AND b.owner = $1 AND b.checkpoint_ns = $3 AND b.channel = s.channel
   AND b.version = c.checkpoint -> 'channel_versions' ->> s.channel
   AND b.type <> 'empty' AND b.blob IS NOT NULL
 WHERE b.blob IS NOT NULL
    OR c.checkpoint -> 'channel_values' ? s.channel
 ORDER BY depth DESC, task_path NULLS FIRST, task_id, idx;

-- Retention (README "Retention"): what the policies delete, in bounded batches. Each batch is
-- a short transaction of the use case dal.usecases.retention: a list_..._locked query picks
-- and locks up to $n candidates (SKIP LOCKED: a row a writer holds is left for the next run,
-- never waited for), then each delete_ statement re-checks what it deletes in a snapshot taken
-- after those locks, and deletes at most $n rows of each table it deletes from (the counts
-- it returns). A checkpoint save locks its thread's row (upsert_checkpoint_batch's ON
-- CONFLICT), and a message's append its conversation's: so a write that committed before
-- the lock is seen by the re-check, and one that comes after waits for the batch to commit.
-- Overrides (metadata "retention" objects of the row and of its user) go through
-- mnemo_retention_days (migration 20261207_10): they exempt (null) or lengthen, never
-- shorten, so every candidate lies behind the setting's own cutoff, on an index; with
-- RETENTION_OVERRIDES=none they are not read at all (the settings bind every row).
-- Every query here is unscoped: it is run by the operator's command or the app's scheduler.

-- name: list_expired_threads_locked
-- Up to $6 threads (the use case takes one a transaction) with no activity for their
-- retention days (RETENTION_THREAD_DAYS, or their override): updated_at (bumped by every
-- save, to the second) before the cutoff,
-- after the keyset cursor ($3, $4, $5), oldest first, locked FOR UPDATE (they are to be
-- deleted), threads a writer holds skipped, and threads with a checkpoint created at or
-- after the cutoff left out (the use case trims a listed thread before it deletes it). Each
-- comes with its own cutoff, which delete_expired_thread_rows re-checks as well.
-- returns: columns thread_id, owner, updated_at, cutoff
-- uses: threads_updated_idx, users_pkey, checkpoints_pkey
-- $1 thread_days int4           RETENTION_THREAD_DAYS (> 0)
-- $2 now timestamptz            the run's clock
-- $3 after_updated_at timestamptz  cursor ('-infinity' at first)
-- $4 after_thread_id text
-- $5 after_owner uuid
-- $6 batch int8
-- $7 overrides bool  the overrides in metadata honoured (RETENTION_OVERRIDES)
SELECT t.thread_id, t.owner, t.updated_at,
       $2::timestamptz - make_interval(days => mnemo_retention_days(
                $1, u.row_metadata, 'ttl_days', u.metadata, 'thread_ttl_days')) AS cutoff
  FROM threads AS t
  -- The overrides: the row's metadata, and its user's by one users_pkey probe per row (a join
  -- may hash all users); neither when they are off.
 CROSS JOIN LATERAL (SELECT CASE WHEN $7 THEN t.metadata END AS row_metadata,
                            CASE WHEN $7 THEN (SELECT x.metadata FROM users AS x
                                                   WHERE x.id = t.owner) END AS metadata) AS u
 WHERE t.updated_at < $2::timestamptz - make_interval(days => $1)
   AND (t.updated_at, t.thread_id, t.owner) > ($3, $4, $5)
   AND t.updated_at < $2::timestamptz - make_interval(days => mnemo_retention_days(
                $1, u.row_metadata, 'ttl_days', u.metadata, 'thread_ttl_days'))
   -- No checkpoint at or after the cutoff (updated_at is to the second): a save committed
   -- after this snapshot bumped updated_at, which FOR UPDATE re-checks on the row it locks.
   AND NOT EXISTS (
        SELECT 1
          FROM checkpoints AS c
         WHERE c.thread_id = t.thread_id AND c.owner = t.owner
           AND c.created_at >= $2::timestamptz - make_interval(days => mnemo_retention_days(
                    $1, u.row_metadata, 'ttl_days', u.metadata, 'thread_ttl_days')))
 ORDER BY t.updated_at, t.thread_id, t.owner
 LIMIT $6
   FOR UPDATE OF t SKIP LOCKED;

-- name: delete_expired_thread_rows
-- Of these locked threads, those still expired (no checkpoint created at or after their
-- cutoff): delete up to $4 of their checkpoints, up to $4 blobs and up to $4 pending
-- writes. A thread with more left is finished by the next statements; its row goes last
-- (delete_expired_threads), so a run stopped half-way leaves an expired thread to the next.
-- returns: columns checkpoints, blobs, writes
-- uses: checkpoints_pkey, checkpoint_blobs_pkey, checkpoint_writes_pkey
-- $1 thread_ids text[]
-- $2 owners uuid[]              in the order of $1
-- $3 cutoffs timestamptz[]      in the order of $1 (list_expired_threads_locked's)
-- $4 batch int8
WITH expired AS (
    SELECT k.thread_id, k.owner
      FROM unnest($1::text[], $2::uuid[], $3::timestamptz[]) AS k(thread_id, owner, cutoff)
     WHERE NOT EXISTS (
            SELECT 1
              FROM checkpoints AS c
             WHERE c.thread_id = k.thread_id AND c.owner = k.owner
               AND c.created_at >= k.cutoff)
), checkpoints_gone AS (
    DELETE FROM checkpoints AS c
     WHERE (c.thread_id, c.owner, c.checkpoint_ns, c.checkpoint_id) IN (
            SELECT x.thread_id, x.owner, x.checkpoint_ns, x.checkpoint_id
              FROM expired AS e
              JOIN checkpoints AS x ON x.thread_id = e.thread_id AND x.owner = e.owner
             LIMIT $4)
    RETURNING 1
), blobs_gone AS (
    DELETE FROM checkpoint_blobs AS b
     WHERE (b.thread_id, b.owner, b.checkpoint_ns, b.channel, b.version) IN (
            SELECT x.thread_id, x.owner, x.checkpoint_ns, x.channel, x.version
              FROM expired AS e
              JOIN checkpoint_blobs AS x ON x.thread_id = e.thread_id AND x.owner = e.owner
             LIMIT $4)
    RETURNING 1
), writes_gone AS (
    DELETE FROM checkpoint_writes AS w
     WHERE (w.thread_id, w.owner, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx) IN (
            SELECT x.thread_id, x.owner, x.checkpoint_ns, x.checkpoint_id, x.task_id, x.idx
              FROM expired AS e
              JOIN checkpoint_writes AS x ON x.thread_id = e.thread_id AND x.owner = e.owner
             LIMIT $4)
    RETURNING 1
)
SELECT (SELECT count(*) FROM checkpoints_gone) AS checkpoints,
       (SELECT count(*) FROM blobs_gone) AS blobs,
       (SELECT count(*) FROM writes_gone) AS writes;

-- name: delete_expired_threads
-- Delete the rows of these locked threads that are still expired (updated_at before their
-- cutoff) and have no checkpoint, blob or pending write left (delete_expired_thread_rows
-- took them). Returns how many threads went.
-- returns: value
-- uses: threads_pkey, checkpoints_pkey, checkpoint_blobs_pkey, checkpoint_writes_pkey
-- $1 thread_ids text[]
-- $2 owners uuid[]              in the order of $1
-- $3 cutoffs timestamptz[]      in the order of $1
WITH deleted AS (
    DELETE FROM threads AS t
     USING unnest($1::text[], $2::uuid[], $3::timestamptz[]) AS k(thread_id, owner, cutoff)
     WHERE t.thread_id = k.thread_id AND t.owner = k.owner
       AND t.updated_at < k.cutoff
       AND NOT EXISTS (SELECT 1 FROM checkpoints AS c
                        WHERE c.thread_id = k.thread_id AND c.owner = k.owner)
       AND NOT EXISTS (SELECT 1 FROM checkpoint_blobs AS b
                        WHERE b.thread_id = k.thread_id AND b.owner = k.owner)
       AND NOT EXISTS (SELECT 1 FROM checkpoint_writes AS w
                        WHERE w.thread_id = k.thread_id AND w.owner = k.owner)
    RETURNING 1
)
SELECT count(*) AS deleted
  FROM deleted;

-- name: list_threads_for_trimming_locked
-- Up to $6 threads after the keyset cursor ($4, $5) (and at it, with $7) in key order, with the number of
-- checkpoints per namespace each keeps (RETENTION_KEEP_CHECKPOINTS, or its override; exempt
-- threads are left out, and so are threads the thread policy ($2, 0: off) finds expired:
-- they are its to delete, and a dry run counts them once), locked FOR NO KEY UPDATE (the
-- lock a save takes: saves under way commit first, the next wait), threads a writer holds
-- skipped, threads with no more checkpoints than they keep left out. The use case takes one
-- a transaction ($6 = 1).
-- returns: columns thread_id, owner, keep
-- uses: threads_pkey, users_pkey, checkpoints_pkey
-- $1 keep_checkpoints int4      RETENTION_KEEP_CHECKPOINTS (> 0)
-- $2 thread_days int4           RETENTION_THREAD_DAYS (0: off)
-- $3 now timestamptz            the run's clock
-- $4 after_thread_id text       cursor ('' at first)
-- $5 after_owner uuid
-- $6 batch int8
-- $7 again bool                 the cursor's thread too (it is not trimmed to the end yet)
-- $8 overrides bool  the overrides in metadata honoured (RETENTION_OVERRIDES)
SELECT t.thread_id, t.owner,
       mnemo_retention_days($1, u.row_metadata, 'keep_checkpoints', u.metadata,
                            'keep_checkpoints') AS keep
  FROM threads AS t
  -- The overrides: the row's metadata, and its user's by one users_pkey probe per row (a join
  -- may hash all users); neither when they are off.
 CROSS JOIN LATERAL (SELECT CASE WHEN $8 THEN t.metadata END AS row_metadata,
                            CASE WHEN $8 THEN (SELECT x.metadata FROM users AS x
                                                   WHERE x.id = t.owner) END AS metadata) AS u
 WHERE (t.thread_id, t.owner) >= ($4, $5)
   AND ($7 OR (t.thread_id, t.owner) <> ($4, $5))
   AND mnemo_retention_days($1, u.row_metadata, 'keep_checkpoints', u.metadata,
                            'keep_checkpoints') IS NOT NULL
   AND ($2 = 0 OR NOT coalesce(
            t.updated_at < $3::timestamptz - make_interval(days => mnemo_retention_days(
                $2, u.row_metadata, 'ttl_days', u.metadata, 'thread_ttl_days')), false))
   -- More checkpoints than it keeps (a probe of at most keep + 1 index entries): a thread
   -- with nothing to trim takes no transaction of its own. The cursor's own thread ($7) is
   -- one whose blobs or writes are not all swept yet: it is taken up again.
   AND (($7 AND (t.thread_id, t.owner) = ($4, $5)) OR EXISTS (
        SELECT 1
          FROM checkpoints AS c
         WHERE c.thread_id = t.thread_id AND c.owner = t.owner
         ORDER BY c.checkpoint_ns, c.checkpoint_id
        OFFSET mnemo_retention_days($1, u.row_metadata, 'keep_checkpoints', u.metadata,
                                    'keep_checkpoints')))
 ORDER BY t.thread_id, t.owner
 LIMIT $6
   FOR NO KEY UPDATE OF t SKIP LOCKED;

-- name: delete_excess_checkpoints
-- Keep-N, up to $5 checkpoints of these locked threads: per thread and namespace, the newest
-- "keep" checkpoints (by id: LangGraph's ids sort by time) stay, and so does what they need.
-- A DeltaChannel is rebuilt from the chain of ancestors back to its last snapshot: a
-- checkpoint whose metadata holds no counters_since_delta_snapshot (every delta channel
-- stored at it, or none used) is a seed, and everything from the newest seed at or below the
-- keep-th checkpoint up stays (no such seed: the namespace is left whole). Of the rest,
-- oldest first, those created at or before the run's clock go (delete_trim_leftovers then makes
-- a kept checkpoint whose parent went a root). Returns how many checkpoints went.
-- returns: value
-- uses: checkpoints_pkey
-- $1 thread_ids text[]
-- $2 owners uuid[]              in the order of $1
-- $3 keeps int4[]               in the order of $1 (list_threads_for_trimming_locked's)
-- $4 now timestamptz            the run's clock
-- $5 batch int8
WITH batch AS (
    SELECT k.thread_id, k.owner, k.keep
      FROM unnest($1::text[], $2::uuid[], $3::int4[]) AS k(thread_id, owner, keep)
), ranked AS (
    SELECT c.thread_id, c.owner, c.checkpoint_ns, c.checkpoint_id, c.created_at, b.keep,
           row_number() OVER (PARTITION BY c.thread_id, c.owner, c.checkpoint_ns
                              ORDER BY c.checkpoint_id DESC) AS rank,
           coalesce(c.metadata -> 'counters_since_delta_snapshot', '{}'::jsonb)
               = '{}'::jsonb AS seed
      FROM batch AS b
      JOIN checkpoints AS c ON c.thread_id = b.thread_id AND c.owner = b.owner
), boundary AS MATERIALIZED (
    -- Computed once (one row per thread and namespace): inlined, PostgreSQL 18 may run it again
    -- for every checkpoint of the thread, which costs the square of its size.
    SELECT DISTINCT ON (r.thread_id, r.owner, r.checkpoint_ns)
           r.thread_id, r.owner, r.checkpoint_ns, r.checkpoint_id
      FROM ranked AS r
     WHERE r.rank >= r.keep
       AND r.seed
     ORDER BY r.thread_id, r.owner, r.checkpoint_ns, r.rank
), doomed AS (
    SELECT r.thread_id, r.owner, r.checkpoint_ns, r.checkpoint_id
      FROM ranked AS r
      JOIN boundary AS d
        ON d.thread_id = r.thread_id AND d.owner = r.owner AND d.checkpoint_ns = r.checkpoint_ns
     WHERE r.checkpoint_id < d.checkpoint_id
       AND r.created_at <= $4
     ORDER BY r.thread_id, r.owner, r.checkpoint_ns, r.checkpoint_id
     LIMIT $5
), deleted AS (
    DELETE FROM checkpoints AS c
     USING doomed AS d
     WHERE c.thread_id = d.thread_id AND c.owner = d.owner
       AND c.checkpoint_ns = d.checkpoint_ns AND c.checkpoint_id = d.checkpoint_id
    RETURNING 1
)
SELECT count(*) AS deleted
  FROM deleted;

-- name: delete_trim_leftovers
-- After delete_excess_checkpoints, in its transaction (so its deletes are seen), what those
-- deletes left behind in these locked threads: a checkpoint whose parent is gone becomes a root
-- (no parent); up to $3 channel blobs no checkpoint of theirs references (by its
-- channel_versions) go; and up to $3 pending writes older (by id) than the oldest checkpoint
-- left in their namespace (the writes of checkpoints that went; a namespace with no checkpoint
-- keeps its writes). A save under way has not committed its blobs or writes (invisible here),
-- its checkpoint references the versions of its parent, which stays, and its writes have newer
-- ids. Every probe is by primary key, per row of the threads: no cost grows with the square of
-- a thread's size. Returns the blobs and writes that went.
-- returns: columns blobs, writes
-- uses: checkpoints_pkey, checkpoint_blobs_pkey, checkpoint_writes_pkey
-- $1 thread_ids text[]
-- $2 owners uuid[]              in the order of $1
-- $3 batch int8
WITH batch AS (
    SELECT k.thread_id, k.owner
      FROM unnest($1::text[], $2::uuid[]) AS k(thread_id, owner)
), roots AS (
    UPDATE checkpoints AS c
       SET parent_checkpoint_id = NULL
      FROM batch AS b
     WHERE c.thread_id = b.thread_id AND c.owner = b.owner
       AND c.parent_checkpoint_id IS NOT NULL
       AND NOT EXISTS (
            SELECT 1 FROM checkpoints AS p
             WHERE p.thread_id = c.thread_id AND p.owner = c.owner
               AND p.checkpoint_ns = c.checkpoint_ns AND p.checkpoint_id = c.parent_checkpoint_id)
), referenced AS (
    SELECT DISTINCT c.thread_id, c.owner, c.checkpoint_ns, v.key AS channel, v.value AS version
      FROM batch AS b
      JOIN checkpoints AS c ON c.thread_id = b.thread_id AND c.owner = b.owner
     CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
), blobs_doomed AS (
    SELECT x.thread_id, x.owner, x.checkpoint_ns, x.channel, x.version
      FROM batch AS b
      JOIN checkpoint_blobs AS x ON x.thread_id = b.thread_id AND x.owner = b.owner
     WHERE NOT EXISTS (
            SELECT 1 FROM referenced AS r
             WHERE r.thread_id = x.thread_id AND r.owner = x.owner
               AND r.checkpoint_ns = x.checkpoint_ns AND r.channel = x.channel
               AND r.version = x.version)
     LIMIT $3
), blobs_gone AS (
    DELETE FROM checkpoint_blobs AS x
     USING blobs_doomed AS d
     WHERE x.thread_id = d.thread_id AND x.owner = d.owner AND x.checkpoint_ns = d.checkpoint_ns
       AND x.channel = d.channel AND x.version = d.version
    RETURNING 1
), oldest AS (
    SELECT c.thread_id, c.owner, c.checkpoint_ns, min(c.checkpoint_id) AS checkpoint_id
      FROM batch AS b
      JOIN checkpoints AS c ON c.thread_id = b.thread_id AND c.owner = b.owner
     GROUP BY c.thread_id, c.owner, c.checkpoint_ns
), writes_doomed AS (
    SELECT w.thread_id, w.owner, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx
      FROM oldest AS o
      JOIN checkpoint_writes AS w
        ON w.thread_id = o.thread_id AND w.owner = o.owner AND w.checkpoint_ns = o.checkpoint_ns
       AND w.checkpoint_id < o.checkpoint_id
     LIMIT $3
), writes_gone AS (
    DELETE FROM checkpoint_writes AS w
     USING writes_doomed AS d
     WHERE w.thread_id = d.thread_id AND w.owner = d.owner AND w.checkpoint_ns = d.checkpoint_ns
       AND w.checkpoint_id = d.checkpoint_id AND w.task_id = d.task_id AND w.idx = d.idx
    RETURNING 1
)
SELECT (SELECT count(*) FROM blobs_gone) AS blobs,
       (SELECT count(*) FROM writes_gone) AS writes;

-- name: list_expired_conversations_locked
-- Conversations with no activity (updated_at: every message, edit and change bumps it) for
-- their retention days (RETENTION_CONVERSATION_DAYS, or their override), after the keyset
-- cursor ($3, $4), oldest first, locked FOR UPDATE (to be deleted), those a writer holds
-- skipped: up to $5 of them, and fewer when their messages would pass $5 (message_count;
-- the first is taken whatever its size), so deleting them (their messages go by cascade)
-- touches a bounded number of rows. Each comes with its own cutoff.
-- returns: columns id, updated_at, cutoff
-- uses: conversations_updated_idx, users_pkey
-- $1 conversation_days int4     RETENTION_CONVERSATION_DAYS (> 0)
-- $2 now timestamptz            the run's clock
-- $3 after_updated_at timestamptz  cursor ('-infinity' at first)
-- $4 after_id uuid
-- $5 batch int8
-- $6 overrides bool  the overrides in metadata honoured (RETENTION_OVERRIDES)
WITH locked AS (
    SELECT c.id, c.updated_at, c.message_count,
           $2::timestamptz - make_interval(days => mnemo_retention_days(
                    $1, u.row_metadata, 'ttl_days', u.metadata, 'conversation_ttl_days')) AS cutoff
      FROM conversations AS c
     CROSS JOIN LATERAL (SELECT CASE WHEN $6 THEN c.metadata END AS row_metadata,
                                CASE WHEN $6 THEN (SELECT x.metadata FROM users AS x
                                                       WHERE x.id = c.user_id) END AS metadata) AS u
     -- On UTC wall time, as conversations_updated_idx holds it (the same order and cutoff).
     WHERE (c.updated_at AT TIME ZONE 'UTC')
               < ($2::timestamptz - make_interval(days => $1)) AT TIME ZONE 'UTC'
       AND ((c.updated_at AT TIME ZONE 'UTC'), c.id) > ($3::timestamptz AT TIME ZONE 'UTC', $4)
       AND c.updated_at < $2::timestamptz - make_interval(days => mnemo_retention_days(
                    $1, u.row_metadata, 'ttl_days', u.metadata, 'conversation_ttl_days'))
     ORDER BY (c.updated_at AT TIME ZONE 'UTC'), c.id
     LIMIT $5
       FOR UPDATE OF c SKIP LOCKED
), sized AS (
    SELECT l.id, l.updated_at, l.cutoff,
           row_number() OVER (ORDER BY l.updated_at, l.id) AS n,
           sum(l.message_count) OVER (ORDER BY l.updated_at, l.id) AS running
      FROM locked AS l
)
SELECT s.id, s.updated_at, s.cutoff
  FROM sized AS s
 WHERE s.n = 1 OR s.running <= $5
 ORDER BY s.updated_at, s.id;

-- name: delete_expired_conversations
-- Delete these locked conversations that are still expired (updated_at before their cutoff);
-- their messages, members, events... go with them (ON DELETE CASCADE). Returns how many
-- conversations went and how many messages they held.
-- returns: columns conversations, messages
-- uses: conversations_pkey
-- $1 ids uuid[]
-- $2 cutoffs timestamptz[]      in the order of $1 (list_expired_conversations_locked's)
WITH deleted AS (
    DELETE FROM conversations AS c
     USING unnest($1::uuid[], $2::timestamptz[]) AS k(id, cutoff)
     WHERE c.id = k.id
       AND c.updated_at < k.cutoff
    RETURNING c.message_count
)
SELECT count(*) AS conversations, coalesce(sum(message_count), 0)::int8 AS messages
  FROM deleted;

-- name: lock_retention_runner
-- Try to become the one retention runner of the database (the app's scheduler): a session
-- advisory lock, taken on the scheduler's own connection outside the pool and held until it
-- stops (unlock_retention_runner) or the connection ends. False: another process runs.
-- returns: value
-- $1 key int8                   dal.usecases.retention.RUNNER_LOCK
SELECT pg_try_advisory_lock($1);

-- name: unlock_retention_runner
-- Give the runner's lock up (lock_retention_runner's).
-- returns: value
-- $1 key int8
SELECT pg_advisory_unlock($1);

-- The run id index (delete_checkpoints_for_runs) becomes a hash index: it stores a 4-byte hash
-- of each run id, so a run id of any length can be saved (a B-tree entry holds at most about
-- 2,700 bytes: a longer run id in a checkpoint's metadata failed the whole save). The query
-- is unchanged: a hash index serves = and = ANY(...), all that query asks.
-- Built CONCURRENTLY (outside a transaction): saves go on meanwhile. The new index exists
-- before the old one goes, so the query is index-served all along.
-- depends: 20261202_01_t5s1p-threads-per-user
-- transactional: false

CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_run_id_hash
    ON checkpoints USING hash ((metadata ->> 'run_id'))
    WHERE metadata ? 'run_id';

DROP INDEX CONCURRENTLY IF EXISTS checkpoints_run_id_idx;

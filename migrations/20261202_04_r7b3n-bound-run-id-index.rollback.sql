-- Inverse of 20261202_04_r7b3n-bound-run-id-index. The B-tree cannot be built while a saved
-- run id is over its limit (about 2,700 bytes): delete those checkpoints first.
-- transactional: false

CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_run_id_idx
    ON checkpoints ((metadata ->> 'run_id'))
    WHERE metadata ? 'run_id';

DROP INDEX CONCURRENTLY IF EXISTS checkpoints_run_id_hash;

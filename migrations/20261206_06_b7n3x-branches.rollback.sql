-- Inverse of 20261206_06_b7n3x-branches.
-- transactional: false

DROP INDEX CONCURRENTLY IF EXISTS messages_active_idx;

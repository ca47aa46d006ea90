-- Inverse of 20261206_05_r4d8k-read-state.
-- transactional: false

DROP INDEX CONCURRENTLY IF EXISTS messages_unread_idx;

-- Inverse of 20261202_03_f2k9x-index-foreign-keys.
-- transactional: false

DROP INDEX CONCURRENTLY IF EXISTS threads_conversation_id_idx;

DROP INDEX CONCURRENTLY IF EXISTS api_tokens_user_id_idx;

-- Index the referencing side of the foreign keys that deletes follow, so that deleting a
-- user (ON DELETE CASCADE to api_tokens) or a conversation (ON DELETE SET NULL on
-- threads.conversation_id) looks the referencing rows up instead of scanning the table:
-- PostgreSQL indexes the referenced key, never the referencing column.
-- - threads.conversation_id is partial: most threads serve no conversation, and a thread row
--   gets a new version on every save, so NULLs in the index would cost every save an entry.
--   The foreign key's lookup (conversation_id = $1) implies IS NOT NULL, so it can use it.
-- - Built CONCURRENTLY (outside a transaction): saves and token checks go on while they
--   build. IF NOT EXISTS lets a re-run skip what a failed run built (an index a failed build
--   left INVALID must be dropped first: DROP INDEX CONCURRENTLY).
-- depends: 20261202_01_t5s1p-threads-per-user
-- transactional: false

CREATE INDEX CONCURRENTLY IF NOT EXISTS api_tokens_user_id_idx ON api_tokens (user_id);

CREATE INDEX CONCURRENTLY IF NOT EXISTS threads_conversation_id_idx ON threads (conversation_id)
    WHERE conversation_id IS NOT NULL;

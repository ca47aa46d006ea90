-- Inverse of 20261207_11_e5r2s-erasure.
-- transactional: false

DROP FUNCTION IF EXISTS mnemo_count_rows(regclass);

DROP INDEX CONCURRENTLY IF EXISTS attachments_user_idx;

DROP INDEX CONCURRENTLY IF EXISTS conversation_members_added_by_idx;

DROP INDEX CONCURRENTLY IF EXISTS message_versions_edited_by_idx;

DROP INDEX CONCURRENTLY IF EXISTS messages_member_parts_idx;

DROP INDEX CONCURRENTLY IF EXISTS messages_retracted_by_idx;

DROP INDEX CONCURRENTLY IF EXISTS messages_sender_idx;

DROP INDEX CONCURRENTLY IF EXISTS message_feedback_user_idx;

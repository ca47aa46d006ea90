-- Erasing a user (README "Erasing a user", dal/usecases/erasure.py): the indexes its batches
-- find the user's rows by, where no index led with the user's id. Each serves a named query of
-- queries/erasure.sql, shown used by tests/dal/test_erasure_plans.py.
-- - message_feedback_user_idx: the user's feedback on any message (the foreign key to users
--   had no index on the referencing side).
-- - messages_sender_idx: the user's messages in conversations someone else owns. Partial:
--   only messages whose sender is not the conversation's owner (messages.user_id), so a
--   one-person conversation, where every message is its owner's, writes no entry here; a
--   message's sender never changes, so the entry is written once.
-- - messages_retracted_by_idx, message_versions_edited_by_idx,
--   conversation_members_added_by_idx: the columns that name a user without a foreign key
--   (the user's deletions of others' messages, edits, members added), all rare.
-- - messages_member_parts_idx: the system messages whose data-member parts name the user
--   (jsonb containment); system messages are only membership changes, few.
-- - attachments_user_idx: every file of the user, uploads in progress included
--   (attachments_user_sha256_key holds only finished ones).
-- Built CONCURRENTLY (appends go on meanwhile); IF NOT EXISTS lets a re-run skip what a failed
-- run built.
-- And for the storage stats (queries/stats.sql): mnemo_count_rows(table), a table's exact row
-- count (dynamic SQL in PL/pgSQL: query_to_xml would do it in plain SQL, but it needs a server
-- built with libxml, which the embedded one is not).
-- depends: 20261207_10_r3t8n-retention
-- transactional: false

CREATE INDEX CONCURRENTLY IF NOT EXISTS message_feedback_user_idx
    ON message_feedback (user_id, conversation_id, seq);

CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_sender_idx
    ON messages (sender_id, conversation_id, seq)
    WHERE sender_id <> user_id;

CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_retracted_by_idx
    ON messages (retracted_by)
    WHERE retracted_by IS NOT NULL;

CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_member_parts_idx
    ON messages USING gin (parts jsonb_path_ops)
    WHERE role = 'system';

CREATE INDEX CONCURRENTLY IF NOT EXISTS message_versions_edited_by_idx
    ON message_versions (edited_by)
    WHERE edited_by IS NOT NULL;

CREATE INDEX CONCURRENTLY IF NOT EXISTS conversation_members_added_by_idx
    ON conversation_members (added_by)
    WHERE added_by IS NOT NULL;

CREATE INDEX CONCURRENTLY IF NOT EXISTS attachments_user_idx
    ON attachments (user_id, id);

CREATE OR REPLACE FUNCTION mnemo_count_rows(counted regclass) RETURNS bigint
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM %s', counted) INTO n;
    RETURN n;
END
$$;

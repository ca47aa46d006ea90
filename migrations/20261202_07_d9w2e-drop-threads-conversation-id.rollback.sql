-- Inverse of 20261202_07_d9w2e-drop-threads-conversation-id: the column as 20261202_02 and
-- 20261202_03 left it (empty, unused, indexed where not NULL).
ALTER TABLE threads
    ADD COLUMN conversation_id uuid REFERENCES conversations (id) ON DELETE SET NULL;
COMMENT ON COLUMN threads.conversation_id IS
    'Unused since 20261202_02: a thread''s conversation is the one naming it (conversations.thread_id).';
CREATE INDEX threads_conversation_id_idx ON threads (conversation_id)
    WHERE conversation_id IS NOT NULL;

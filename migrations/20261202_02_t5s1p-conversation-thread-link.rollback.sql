-- Inverse of 20261202_02_t5s1p-conversation-thread-link: threads.conversation_id is filled
-- again from the conversations' thread_id (links the migration cleared stay cleared).

COMMENT ON COLUMN threads.conversation_id IS NULL;

UPDATE threads AS t
   SET conversation_id = c.id
  FROM conversations AS c
 WHERE c.user_id = t.owner
   AND c.thread_id = t.thread_id;

DROP INDEX conversations_user_thread_key;

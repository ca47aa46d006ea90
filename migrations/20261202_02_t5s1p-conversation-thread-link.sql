-- One source of truth for the link between a conversation and its agent's thread: the
-- conversation's thread_id (the thread of that id among its user's threads, which may not
-- exist yet: an agent creates it on its first checkpoint). A thread's conversation is the
-- conversation of its owner that names it, looked up by conversations_user_thread_key.
-- threads.conversation_id, which could disagree, is no longer read or written: it is emptied
-- here and stays only until a later migration drops it (20261202_03 indexes it, and runs
-- after this one).
-- Existing links: a conversation without a thread_id takes the most recently updated thread
-- of its user that named it; a thread named by several conversations of one user stays the
-- thread of the most recently updated one, and the others' thread_id is cleared (a thread
-- serves one conversation). A thread id is at most 500 characters (ThreadId), so the key
-- fits a B-tree entry.
-- depends: 20261202_01_t5s1p-threads-per-user

UPDATE conversations AS c
   SET thread_id = t.thread_id,
       version = c.version + 1
  FROM (
        SELECT DISTINCT ON (conversation_id) conversation_id, thread_id, owner
          FROM threads
         WHERE conversation_id IS NOT NULL
         ORDER BY conversation_id, updated_at DESC, thread_id
       ) AS t
 WHERE c.id = t.conversation_id
   AND c.user_id = t.owner
   AND c.thread_id IS NULL;

UPDATE conversations AS c
   SET thread_id = NULL,
       version = c.version + 1
  FROM (
        SELECT id, row_number() OVER (
                   PARTITION BY user_id, thread_id ORDER BY updated_at DESC, id DESC) AS rank
          FROM conversations
         WHERE thread_id IS NOT NULL
       ) AS ranked
 WHERE c.id = ranked.id
   AND ranked.rank > 1;

-- A thread serves one conversation of its user; the index also finds a thread's conversation.
CREATE UNIQUE INDEX conversations_user_thread_key ON conversations (user_id, thread_id)
    WHERE thread_id IS NOT NULL;

UPDATE threads SET conversation_id = NULL WHERE conversation_id IS NOT NULL;
COMMENT ON COLUMN threads.conversation_id IS
    'Unused since 20261202_02: a thread''s conversation is the one naming it (conversations.thread_id).';

-- threads.conversation_id has been unused since 20261202_02 (a thread's conversation is the
-- one of its owner that names it: conversations.thread_id). Dropping it also drops its
-- foreign key, whose ON DELETE SET NULL every conversation delete ran, and its index
-- (20261202_03).
-- depends: 20261202_02_t5s1p-conversation-thread-link 20261202_03_f2k9x-index-foreign-keys

ALTER TABLE threads DROP COLUMN conversation_id;

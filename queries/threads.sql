-- Agent threads. Thread ids are scoped per owner (the key is (thread_id, owner)), and the
-- queries come in two families, told apart by their first parameter and their names:
-- - caller-scoped, for HTTP ($1 user_id: the caller, the owner of their threads): another
--   user's thread of the same id, or one no user owns (written by a saver without a user), is
--   another thread: invisible, never forbidden, never in the way. A write or delete of this
--   family is named ..._of_user. Checkpoints are then read and written by the queries of
--   checkpoints.sql with the caller as the owner, in the same transaction
--   (dal/usecases/threads.py).
-- - unscoped, at the end ($1 owner, trusted as passed: the saver's, or the caller's once
--   checked), named ..._of_owner where the other family has the same operation.
--
-- A thread's conversation is not stored with the thread: it is the conversation of the
-- thread's owner that names the thread (conversations.thread_id, the one source of truth;
-- conversations_user_thread_key makes it one at most and finds it).

-- fragment: thread_row
-- A thread as the API shows it (the record Thread), from "threads AS t": its conversation is
-- the one of its owner's that names it, looked up by conversations_user_thread_key. Each query
-- that includes it adds its WHERE, order and lock.
SELECT t.thread_id, t.user_id,
       (SELECT c.id FROM conversations AS c
         WHERE c.user_id = t.owner AND c.thread_id = t.thread_id) AS conversation_id,
       t.metadata, t.created_at, t.updated_at
  FROM threads AS t

-- name: get_thread
-- The caller's thread.
-- returns: Thread
-- uses: threads_pkey, conversations_user_thread_key
-- $1 user_id uuid
-- $2 thread_id text
{{thread_row}}
 WHERE t.thread_id = $2
   AND t.owner = $1;

-- name: get_thread_locked
-- The caller's thread, locked for a prune until the transaction ends (FOR NO KEY UPDATE: the
-- lock every checkpoint save takes on its thread row, upsert_thread_of_user's and
-- upsert_checkpoint_batch's). So a prune waits for the saves under way to commit, and then
-- sees their checkpoints; a save that comes meanwhile waits for the prune, and its parent is
-- what the prune left. With FOR KEY SHARE they interleaved: a state write read its parent,
-- a prune deleted it, and the new checkpoint named a deleted parent.
-- returns: Thread
-- uses: threads_pkey, conversations_user_thread_key
-- $1 user_id uuid
-- $2 thread_id text
{{thread_row}}
 WHERE t.thread_id = $2
   AND t.owner = $1
   FOR NO KEY UPDATE OF t;

-- name: list_threads
-- First page of the caller's threads, most recently updated first. A thread's user_id is
-- its owner whenever set (threads_owner_check), and it is set on every thread of a user: the
-- one index on it serves this list and the cascade of a user's deletion.
-- returns: Thread
-- uses: threads_user_updated_idx, conversations_user_thread_key
-- $1 user_id uuid
-- $2 page_size int8
{{thread_row}}
 WHERE t.user_id = $1
 ORDER BY t.updated_at DESC, t.thread_id DESC
 LIMIT $2;

-- name: list_threads_before
-- Next page of the caller's threads, after the keyset cursor (updated_at, thread_id) of the
-- last row of the previous page. The row comparison matches the index order exactly, so the
-- scan starts at the cursor instead of filtering from the top.
-- returns: Thread
-- uses: threads_user_updated_idx, conversations_user_thread_key
-- $1 user_id uuid
-- $2 updated_at timestamptz     cursor: updated_at of the last row seen
-- $3 thread_id text             cursor: thread_id of the last row seen
-- $4 page_size int8
{{thread_row}}
 WHERE t.user_id = $1
   AND (t.updated_at, t.thread_id) < ($2, $3)
 ORDER BY t.updated_at DESC, t.thread_id DESC
 LIMIT $4;

-- name: upsert_thread_of_user
-- Claim a thread for a state write: create the caller's thread of this id, or take the
-- existing one. Either way the row stays locked until the transaction ends, so state writes
-- to one thread queue up (each one's parent is the one before). Other owners' threads of
-- the same id are other rows: untouched. With a conversation id, that conversation of the
-- caller's names the thread from now on (its version bumped if that changes it); a
-- conversation that is not the caller's is left as it was (the caller compares the
-- conversation_id returned), and linking a thread another conversation names violates
-- conversations_user_thread_key.
-- returns: Thread
-- uses: threads_pkey, conversations_pkey, conversations_user_thread_key
-- $1 user_id uuid
-- $2 thread_id text
-- $3 conversation_id uuid       NULL keeps the link as it is
WITH linked AS (
    UPDATE conversations AS c
       SET thread_id = $2,
           version = c.version + 1,
           updated_at = now()
     WHERE c.id = $3
       AND c.user_id = $1
       AND c.thread_id IS DISTINCT FROM $2
    RETURNING c.id
), thread AS (
    INSERT INTO threads AS t (thread_id, owner, user_id)
    VALUES ($2, $1, $1)
    ON CONFLICT (thread_id, owner) DO UPDATE
       SET user_id = excluded.user_id,
           updated_at = now()
    RETURNING t.thread_id, t.user_id, t.metadata, t.created_at, t.updated_at
)
SELECT thread.thread_id, thread.user_id,
       coalesce((SELECT linked.id FROM linked),
                (SELECT c.id FROM conversations AS c
                  WHERE c.user_id = $1 AND c.thread_id = $2)) AS conversation_id,
       thread.metadata, thread.created_at, thread.updated_at
  FROM thread;

-- name: insert_thread_copy
-- Create the target thread of a copy, in one statement: the caller's, with the source's
-- metadata, only if the source is the caller's thread (locked against deletion until the
-- transaction ends) and the caller has no thread of the target id. Says which of the two
-- failed, if one did. The copy serves no conversation: a conversation names one thread.
-- returns: CopyTarget
-- uses: threads_pkey
-- $1 user_id uuid
-- $2 source_thread_id text
-- $3 target_thread_id text
WITH source AS (
    SELECT s.thread_id, s.metadata
      FROM threads AS s
     WHERE s.thread_id = $2
       AND s.owner = $1
       FOR KEY SHARE
), target AS (
    INSERT INTO threads (thread_id, owner, user_id, metadata)
    SELECT $3, $1, $1, source.metadata
      FROM source
    ON CONFLICT (thread_id, owner) DO NOTHING
    RETURNING thread_id
)
SELECT EXISTS (SELECT 1 FROM source) AS source_found,
       EXISTS (SELECT 1 FROM target) AS created;

-- name: update_thread_of_user
-- Replace the caller's thread's metadata (its "retention" object overrides the retention
-- policies for it); a change is activity: updated_at moves. Returns the thread, none if it is
-- not the caller's.
-- returns: Thread
-- uses: threads_pkey, conversations_user_thread_key
-- $1 user_id uuid
-- $2 thread_id text
-- $3 metadata jsonb
WITH t AS (
    UPDATE threads
       SET metadata = $3,
           updated_at = now()
     WHERE thread_id = $2
       AND owner = $1
    RETURNING thread_id, owner, user_id, metadata, created_at, updated_at
)
SELECT t.thread_id, t.user_id,
       (SELECT c.id FROM conversations AS c
         WHERE c.user_id = t.owner AND c.thread_id = t.thread_id) AS conversation_id,
       t.metadata, t.created_at, t.updated_at
  FROM t;

-- name: delete_thread_of_user
-- Delete the caller's thread: its checkpoints, blobs and writes go with it (the trigger
-- threads_delete_rows deletes them, once per statement: no foreign key cascades).
-- returns: value
-- uses: threads_pkey
-- $1 user_id uuid
-- $2 thread_id text
DELETE FROM threads
 WHERE thread_id = $2
   AND owner = $1
RETURNING thread_id;

-- --- Unscoped: $1 is the threads' owner, trusted as passed (the saver's; the HTTP use cases'
-- once the caller's thread is checked).

-- name: delete_thread_of_owner
-- Delete a thread of an owner with its checkpoints, blobs and writes, in one statement. The
-- trigger on threads deletes them with the thread row; writes saved without any checkpoint
-- have no thread row, so they are deleted here too. Returns the thread id if there was
-- anything.
-- returns: value
-- uses: threads_pkey, checkpoints_pkey, checkpoint_blobs_pkey, checkpoint_writes_pkey
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
WITH thread AS (
    DELETE FROM threads WHERE thread_id = $2 AND owner = $1
    RETURNING thread_id
), writes AS (
    DELETE FROM checkpoint_writes WHERE thread_id = $2 AND owner = $1
    RETURNING thread_id
)
SELECT thread_id FROM thread
 UNION
SELECT thread_id FROM writes;

-- name: update_thread_metadata_of_owner
-- Replace the metadata of an owner's thread (its "retention" object overrides the retention
-- policies for it; a change is activity: updated_at moves). Returns the thread id, none if
-- the owner has no such thread.
-- returns: value
-- uses: threads_pkey
-- $1 owner uuid                 the thread's owner: a user's id, or the nil UUID
-- $2 thread_id text
-- $3 metadata jsonb
UPDATE threads
   SET metadata = $3,
       updated_at = now()
 WHERE thread_id = $2
   AND owner = $1
RETURNING thread_id;

-- name: list_threads_locked_for_prune
-- Which of these threads the owner has, locked for a prune until the transaction ends, in a
-- fixed order (FOR NO KEY UPDATE: the lock every checkpoint save takes on its thread row). A
-- prune then waits for the saves under way and sees their checkpoints, and a state write that
-- comes meanwhile reads its parent after the prune: no checkpoint is left naming a deleted
-- parent.
-- returns: columns thread_id
-- uses: threads_pkey
-- $1 owner uuid                 the threads' owner: a user's id, or the nil UUID
-- $2 thread_ids text[]
SELECT thread_id
  FROM threads
 WHERE thread_id = ANY($2::text[])
   AND owner = $1
 ORDER BY thread_id
   FOR NO KEY UPDATE;

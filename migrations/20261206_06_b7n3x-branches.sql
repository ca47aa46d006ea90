-- The active branch, indexed on its own (README "Branches"): the messages on the path from the
-- root to the conversation's active leaf, by seq. GET .../messages reads them newest first
-- (list_messages_latest/_before/_after, "AND active"), and a switch of the active leaf finds
-- the old path's messages after the fork point (update_active_leaf) by this index: both cost
-- the rows they return, however many messages of other branches lie between them (with
-- messages_pkey and a filter on active, a page of a branch that forked long ago would read
-- every newer message of the other branches first).
-- Built CONCURRENTLY (outside a transaction): appends go on while it builds. IF NOT EXISTS
-- lets a re-run skip what a failed run built (an INVALID index must be dropped first).
-- depends: 20261206_03_h3m7q-shared-conversations
-- transactional: false

CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_active_idx ON messages (conversation_id, seq)
    WHERE active;

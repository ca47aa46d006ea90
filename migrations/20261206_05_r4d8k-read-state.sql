-- Read state (README "Read state and unread"): unread counts come from seqs, never from a row
-- per message per reader. A member's unread messages are those after their last_read_seq that
-- are on the active branch, not retracted and not their own; this partial index holds exactly
-- the active, unretracted messages by (conversation_id, seq), with the sender beside them, so
-- counting them is an index-only range scan from last_read_seq (bounded by the count's cap),
-- and a conversation with nothing unread costs one index descent.
-- Built CONCURRENTLY (outside a transaction): appends go on meanwhile.
-- depends: 20261206_03_h3m7q-shared-conversations
-- transactional: false

CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_unread_idx
    ON messages (conversation_id, seq) INCLUDE (sender_id)
    WHERE active AND retracted_at IS NULL;

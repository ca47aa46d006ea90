-- Chat sessions, message limits and tool-call integrity (README "Chat sessions", "Limits",
-- "Tool-call integrity"): what the append statement needs to decide them with key lookups.
-- * user_message_counts is split in stripes (user_id, stripe 0-31): a user's total is the sum
--   of their rows. With no per-user limit, an append adds 1 to the stripe of its conversation
--   (a byte of its id), so one user's appends to different conversations (an agent's service
--   user) rarely wait for each other; one row per user would queue them all behind each
--   other's commits. With APP_MAX_MESSAGES_PER_USER set, an append locks stripe 0 (FOR
--   UPDATE: the newest count), adds the other stripes (which no append changes meanwhile) and
--   counts into stripe 0, so concurrent appends never pass the limit. Every user has stripe 0
--   from the start (trigger): a missing row could not be locked, and concurrent first appends
--   would all read 0.
-- * message_tool_calls.unanswered_seq: the complete non-tool message that followed a call
--   still without a result (flagged, in 'flag' mode, as unanswered_tool_call). A call is open
--   while it has neither a result nor such a message; the open calls of a conversation are
--   found by their own partial index, however many calls the conversation has made.
-- * messages_flagged_idx: the flagged messages of a conversation, paged by seq.
-- depends: 20261206_03_h3m7q-shared-conversations

ALTER TABLE user_message_counts
    ADD COLUMN stripe smallint NOT NULL DEFAULT 0,
    DROP CONSTRAINT user_message_counts_pkey,
    ADD CONSTRAINT user_message_counts_pkey PRIMARY KEY (user_id, stripe),
    ADD CONSTRAINT user_message_counts_stripe_check CHECK (stripe BETWEEN 0 AND 31);

INSERT INTO user_message_counts (user_id, stripe, message_count)
SELECT u.id, 0, 0
  FROM users AS u
    ON CONFLICT (user_id, stripe) DO NOTHING;

CREATE FUNCTION mnemo_user_message_count() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO user_message_counts (user_id, stripe, message_count)
    VALUES (NEW.id, 0, 0)
        ON CONFLICT (user_id, stripe) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_message_count AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION mnemo_user_message_count();

ALTER TABLE message_tool_calls ADD COLUMN unanswered_seq bigint;
CREATE INDEX message_tool_calls_open_idx
    ON message_tool_calls (conversation_id, call_seq)
    WHERE result_seq IS NULL AND unanswered_seq IS NULL;

CREATE INDEX messages_flagged_idx
    ON messages (conversation_id, seq)
    WHERE integrity IS NOT NULL;

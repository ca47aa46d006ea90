-- Back to the schema of 20261206_03: the indexes, the columns and the trigger go; the stripes
-- of each user's count are summed into one row (rows of 0 are harmless there).
DROP INDEX messages_flagged_idx;
DROP INDEX message_tool_calls_open_idx;
ALTER TABLE message_tool_calls DROP COLUMN unanswered_seq;
DROP TRIGGER users_message_count ON users;
DROP FUNCTION mnemo_user_message_count();
CREATE TABLE user_message_counts_total AS
SELECT user_id, sum(message_count)::integer AS message_count
  FROM user_message_counts
 GROUP BY user_id;
DELETE FROM user_message_counts;
ALTER TABLE user_message_counts
    DROP CONSTRAINT user_message_counts_pkey,
    DROP CONSTRAINT user_message_counts_stripe_check,
    DROP COLUMN stripe,
    ADD CONSTRAINT user_message_counts_pkey PRIMARY KEY (user_id);
INSERT INTO user_message_counts (user_id, message_count)
SELECT user_id, message_count FROM user_message_counts_total;
DROP TABLE user_message_counts_total;

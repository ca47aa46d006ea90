-- Inverse of 20261123_02_c4m9x-create-conversations-messages.
DROP TABLE messages;
DROP INDEX conversations_user_updated_idx;
DROP TABLE conversations;
DROP FUNCTION mnemo_parts_text(jsonb);

-- Inverse of 20261206_02_s6e4r-message-search.
DROP INDEX conversations_search_idx;
DROP INDEX messages_user_created_idx;
DROP INDEX messages_search_idx;
ALTER TABLE messages DROP COLUMN search_vector;
DROP TRIGGER conversations_owner ON conversations;
DROP FUNCTION mnemo_conversation_owner();
DROP TRIGGER messages_user_id ON messages;
DROP FUNCTION mnemo_message_user_id();
ALTER TABLE messages DROP COLUMN user_id;
DROP FUNCTION mnemo_search_query(text[], boolean[], integer[]);
DROP FUNCTION mnemo_term_query(text);
DROP FUNCTION mnemo_tsquery_and(tsquery, tsquery);
DROP FUNCTION mnemo_lexemes_query(text[]);
DROP FUNCTION mnemo_message_vector(text, jsonb, text);
DROP FUNCTION mnemo_message_facets(text, jsonb);
DROP FUNCTION mnemo_text_vector(text);
DROP FUNCTION mnemo_cjk_vector(text);
DROP FUNCTION mnemo_cjk_class();
-- Created by the migration if it was missing; a btree_gin another schema object relies on
-- stays (RESTRICT refuses to drop it, and the rollback stops there, saying so).
DROP EXTENSION IF EXISTS btree_gin;

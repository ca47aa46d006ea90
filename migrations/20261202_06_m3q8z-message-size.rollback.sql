-- Inverse of 20261202_06_m3q8z-message-size.
ALTER TABLE conversations DROP COLUMN draft_digest;
ALTER TABLE messages
    DROP COLUMN draft_digest,
    DROP COLUMN metadata_bytes,
    DROP COLUMN parts_count,
    DROP COLUMN parts_bytes;
DROP FUNCTION mnemo_newest_message_at(uuid, bigint);
DROP FUNCTION mnemo_conversation_digest(text, jsonb, text[], text);
DROP FUNCTION mnemo_message_digest(text, jsonb, jsonb, text);
DROP FUNCTION mnemo_message_bytes(bigint, text, integer);
DROP FUNCTION mnemo_parts_bytes(jsonb);

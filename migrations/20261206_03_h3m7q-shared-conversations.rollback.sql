-- Back to one owner per conversation: members, rights and everything built on them go.
DROP TABLE user_message_counts;
DROP TABLE message_tool_calls;
DROP TABLE chat_sessions;
DROP TABLE message_feedback;
DROP TABLE message_versions;
DROP INDEX messages_parent_idx;
ALTER TABLE messages
    DROP CONSTRAINT messages_integrity_check,
    DROP COLUMN sender_id,
    DROP COLUMN reply_to,
    DROP COLUMN parent_seq,
    DROP COLUMN active,
    DROP COLUMN session_no,
    DROP COLUMN edited_at,
    DROP COLUMN retracted_at,
    DROP COLUMN retracted_by,
    DROP COLUMN integrity,
    DROP COLUMN feedback_up,
    DROP COLUMN feedback_down;
ALTER TABLE conversations
    DROP CONSTRAINT conversations_direct_check,
    DROP CONSTRAINT conversations_tool_integrity_check,
    DROP CONSTRAINT conversations_kind_check,
    DROP COLUMN kind,
    DROP COLUMN member_count,
    DROP COLUMN leaf_seq,
    DROP COLUMN tool_integrity,
    DROP COLUMN session_no,
    DROP COLUMN session_active_at,
    DROP COLUMN session_ended;
DROP TRIGGER conversations_owner_member ON conversations;
DROP FUNCTION mnemo_owner_member();
DROP TABLE conversation_members;
DROP FUNCTION mnemo_role_rank(text);
DROP FUNCTION mnemo_may(text, text);
DROP TABLE conversation_rights;
DROP TABLE conversation_roles;

-- Membership changes no longer write system messages (those written stay).
DROP INDEX conversation_members_joined_idx;
DROP FUNCTION mnemo_member_event(uuid, uuid, uuid, jsonb, integer, uuid);
DROP FUNCTION mnemo_append_system_message(uuid, uuid, uuid, jsonb);

-- Membership changes as system messages (README "Members and roles"), and the members list's
-- order.
-- * mnemo_append_system_message(conversation_id, id, sender, parts): appends a 'system'
--   message as insert_message appends one (the conversation's row locked, seq = last_seq + 1,
--   on the active branch, in the current chat session) and moves the sender's read position to
--   it. It raises nothing a caller could cause, so the change it reports commits with it.
-- * mnemo_member_event(...): what every membership change of queries/members.sql ends with:
--   the conversation's member_count (and owner, on a handover) and the system message, in the
--   changing statement. The conversation's row is updated only here, never by the statement
--   that calls it (one row updated twice in one statement is an error or a lost update).
-- * conversation_members_joined_idx: list_members pages the members in the order they
--   joined.
-- depends: 20261206_03_h3m7q-shared-conversations

-- Append a system message written by sender (a member, or NULL) to conversation_id, with the
-- message id given (ids are made by the caller: UUIDv7); returns its seq, or NULL when the
-- conversation is missing. Metadata is empty, the status complete; the messages' owner column
-- is the conversation's owner. VOLATILE (the default): it reads the conversation's row after
-- locking it, with whatever the calling statement's earlier commands changed.
-- PL/pgSQL, so that its body is checked when it runs, not when it is made (a test applies
-- the migrations without an earlier one); the parameters are named by the function's name,
-- plain names are columns.
CREATE FUNCTION mnemo_append_system_message(conversation_id uuid, id uuid, sender uuid, parts jsonb)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
DECLARE
    appended bigint;
BEGIN
    WITH locked AS (
        SELECT c.id, c.user_id, c.last_seq, c.leaf_seq, c.session_no
          FROM conversations AS c
         WHERE c.id = mnemo_append_system_message.conversation_id
           FOR UPDATE OF c
    ), inserted AS (
        INSERT INTO messages (conversation_id, seq, id, role, parts, content, metadata, status,
                              parts_bytes, parts_count, metadata_bytes, draft_digest, user_id,
                              sender_id, parent_seq, active, session_no)
        SELECT l.id, l.last_seq + 1, mnemo_append_system_message.id, 'system',
               mnemo_append_system_message.parts,
               mnemo_parts_text(mnemo_append_system_message.parts), '{}'::jsonb, 'complete',
               mnemo_parts_bytes(mnemo_append_system_message.parts),
               jsonb_array_length(mnemo_append_system_message.parts),
               octet_length('{}'::jsonb::text),
               mnemo_message_digest('system', mnemo_append_system_message.parts, '{}'::jsonb,
                                    'complete'),
               l.user_id, mnemo_append_system_message.sender, l.leaf_seq, true, l.session_no
          FROM locked AS l
        RETURNING conversation_id, seq, created_at
    ), conv AS (
        UPDATE conversations AS c
           SET last_seq = i.seq,
               message_count = c.message_count + 1,
               last_message_at = i.created_at,
               updated_at = now(),
               leaf_seq = i.seq
          FROM inserted AS i
         WHERE c.id = i.conversation_id
    ), own_read AS (
        -- one's own messages are read
        UPDATE conversation_members AS mm
           SET last_read_seq = greatest(mm.last_read_seq, i.seq),
               delivered_seq = greatest(mm.delivered_seq, i.seq)
          FROM inserted AS i
         WHERE mm.conversation_id = i.conversation_id
           AND mm.user_id = mnemo_append_system_message.sender
    )
    SELECT i.seq INTO appended FROM inserted AS i;
    RETURN appended;
END
$$;

-- The end of a membership change: member_count moves by member_delta, new_owner (if not NULL)
-- becomes conversations.user_id (the owner member's id, always), then the system message
-- (parts: one data-member part per member changed) is appended; returns its seq.
CREATE FUNCTION mnemo_member_event(conversation_id uuid, id uuid, sender uuid, parts jsonb,
                                   member_delta integer, new_owner uuid)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
BEGIN
    UPDATE conversations AS c
       SET member_count = c.member_count + mnemo_member_event.member_delta,
           user_id = coalesce(mnemo_member_event.new_owner, c.user_id)
     WHERE c.id = mnemo_member_event.conversation_id;
    RETURN mnemo_append_system_message(mnemo_member_event.conversation_id, mnemo_member_event.id,
                                       mnemo_member_event.sender, mnemo_member_event.parts);
END
$$;

-- list_members: a conversation's members in the order they joined (keyset on joined_at,
-- user_id).
CREATE INDEX conversation_members_joined_idx
    ON conversation_members (conversation_id, joined_at, user_id);

-- Shared conversations (README "Shared conversations"): members with roles, what each role may
-- do (one table, read by every statement that checks a right), senders, read positions,
-- replies and branches, edits and retraction, feedback, chat sessions, message limits and
-- tool-call integrity.
-- * conversation_members: one row per member; the creator is the owner. conversations.user_id
--   stays the current owner (the lists' and search's index key); a statement that hands
--   ownership on changes both.
-- * conversation_rights: (role, action) pairs; mnemo_may(role, action) reads it. A non-member
--   sees nothing (404); a member without the right is told so (403).
-- * messages.sender_id: the member who wrote it (an agent writes with its own user's token, so
--   it is its own member); existing messages were written by their conversation's owner.
-- * messages.parent_seq / active, conversations.leaf_seq: every message follows a parent (the
--   previous message of its branch); the messages on the path from the root to the active leaf
--   are active, so the active branch is read like the linear history, by seq, with one more
--   condition. Existing conversations are one branch.
-- depends: 20261206_02_s6e4r-message-search

CREATE TABLE conversation_roles (
    role text    PRIMARY KEY,
    rank integer NOT NULL UNIQUE
);
INSERT INTO conversation_roles (role, rank)
VALUES ('owner', 4), ('admin', 3), ('moderator', 2), ('member', 1);

-- What each role may do. Managing members (add, remove, change role) also needs the target's
-- role, old and new, to rank below the actor's own; leaving, and editing or retracting one's
-- own message within APP_EDIT_WINDOW_SECONDS, are any member's.
CREATE TABLE conversation_rights (
    role   text NOT NULL REFERENCES conversation_roles (role),
    action text NOT NULL,
    PRIMARY KEY (role, action)
);
INSERT INTO conversation_rights (role, action)
SELECT r.role, a.action
  FROM conversation_roles AS r
  JOIN (VALUES ('read', 1), ('append', 1), ('feedback', 1), ('switch_branch', 1),
               ('end_session', 2), ('delete_message', 2), ('remove_member', 2),
               ('add_member', 3), ('change_role', 3), ('update_conversation', 3),
               ('delete_conversation', 4)) AS a(action, min_rank)
    ON r.rank >= a.min_rank;

CREATE FUNCTION mnemo_may(role text, action text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT EXISTS (SELECT 1 FROM conversation_rights AS r
                    WHERE r.role = mnemo_may.role AND r.action = mnemo_may.action)
$$;

CREATE FUNCTION mnemo_role_rank(role text) RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT r.rank FROM conversation_roles AS r WHERE r.role = mnemo_role_rank.role
$$;

CREATE TABLE conversation_members (
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            text        NOT NULL REFERENCES conversation_roles (role),
    -- Read position: every message up to this seq is read (never moves backwards); a member's
    -- own append moves it to that message.
    last_read_seq   bigint      NOT NULL DEFAULT 0,
    -- Delivery position: the member's client received every message up to this seq.
    delivered_seq   bigint      NOT NULL DEFAULT 0,
    joined_at       timestamptz NOT NULL DEFAULT now(),
    added_by        uuid,
    CONSTRAINT conversation_members_pkey PRIMARY KEY (conversation_id, user_id)
);
-- The conversations of a user (lists, unread counts); the foreign key to users too.
CREATE INDEX conversation_members_user_idx
    ON conversation_members (user_id, conversation_id) INCLUDE (role, last_read_seq);

ALTER TABLE conversations
    ADD COLUMN kind text NOT NULL DEFAULT 'group',
    ADD COLUMN member_count integer NOT NULL DEFAULT 1,
    ADD COLUMN leaf_seq bigint,
    ADD COLUMN tool_integrity text NOT NULL DEFAULT 'off',
    ADD COLUMN session_no integer NOT NULL DEFAULT 0,
    ADD COLUMN session_active_at timestamptz,
    ADD COLUMN session_ended boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT conversations_kind_check CHECK (kind IN ('direct', 'group')),
    ADD CONSTRAINT conversations_tool_integrity_check
        CHECK (tool_integrity IN ('off', 'flag', 'reject')),
    ADD CONSTRAINT conversations_direct_check CHECK (kind = 'group' OR member_count <= 2);

INSERT INTO conversation_members (conversation_id, user_id, role, last_read_seq, delivered_seq,
                                  joined_at)
SELECT c.id, c.user_id, 'owner', c.last_seq, c.last_seq, c.created_at
  FROM conversations AS c;

-- Whoever creates a conversation (a gateway, an import, a script) makes its user its owner
-- member, who has read what it already holds.
CREATE FUNCTION mnemo_owner_member() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO conversation_members (conversation_id, user_id, role, last_read_seq,
                                      delivered_seq, joined_at)
    VALUES (NEW.id, NEW.user_id, 'owner', NEW.last_seq, NEW.last_seq, NEW.created_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER conversations_owner_member AFTER INSERT ON conversations
    FOR EACH ROW EXECUTE FUNCTION mnemo_owner_member();

ALTER TABLE messages
    ADD COLUMN sender_id uuid,
    ADD COLUMN reply_to uuid,
    ADD COLUMN parent_seq bigint,
    ADD COLUMN active boolean NOT NULL DEFAULT true,
    ADD COLUMN session_no integer,
    ADD COLUMN edited_at timestamptz,
    ADD COLUMN retracted_at timestamptz,
    ADD COLUMN retracted_by uuid,
    ADD COLUMN integrity text,
    ADD COLUMN feedback_up integer NOT NULL DEFAULT 0,
    ADD COLUMN feedback_down integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT messages_integrity_check
        CHECK (integrity IN ('unanswered_tool_call', 'unknown_tool_result'));

-- Existing history: written by the owner, one branch (each message follows the one before).
UPDATE messages AS m
   SET sender_id = m.user_id,
       parent_seq = p.parent_seq
  FROM (SELECT conversation_id, seq,
               lag(seq) OVER (PARTITION BY conversation_id ORDER BY seq) AS parent_seq
          FROM messages) AS p
 WHERE p.conversation_id = m.conversation_id
   AND p.seq = m.seq;
UPDATE conversations AS c
   SET leaf_seq = (SELECT max(m.seq) FROM messages AS m WHERE m.conversation_id = c.id);

-- Siblings of a message (the children of its parent), and walking a branch down.
CREATE INDEX messages_parent_idx ON messages (conversation_id, parent_seq);

-- Earlier versions of edited messages, newest version last.
CREATE TABLE message_versions (
    conversation_id uuid        NOT NULL,
    seq             bigint      NOT NULL,
    version         integer     NOT NULL,
    parts           jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    edited_at       timestamptz NOT NULL DEFAULT now(),
    edited_by       uuid,
    CONSTRAINT message_versions_pkey PRIMARY KEY (conversation_id, seq, version),
    CONSTRAINT message_versions_message_fkey FOREIGN KEY (conversation_id, seq)
        REFERENCES messages (conversation_id, seq) ON DELETE CASCADE
);

-- A member's rating of a message: up or down, an optional score and comment.
CREATE TABLE message_feedback (
    conversation_id uuid        NOT NULL,
    seq             bigint      NOT NULL,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rating          text        NOT NULL,
    score           double precision,
    comment         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_feedback_pkey PRIMARY KEY (conversation_id, seq, user_id),
    CONSTRAINT message_feedback_message_fkey FOREIGN KEY (conversation_id, seq)
        REFERENCES messages (conversation_id, seq) ON DELETE CASCADE,
    CONSTRAINT message_feedback_rating_check CHECK (rating IN ('up', 'down'))
);

-- Chat sessions: a conversation's activity split where it paused longer than the timeout.
CREATE TABLE chat_sessions (
    conversation_id  uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    session_no       integer     NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz,
    first_seq        bigint,
    last_seq         bigint,
    message_count    integer     NOT NULL DEFAULT 0,
    CONSTRAINT chat_sessions_pkey PRIMARY KEY (conversation_id, session_no)
);

-- Tool calls of a conversation, by id: the call's message and the message that answered it.
CREATE TABLE message_tool_calls (
    conversation_id uuid   NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    tool_call_id    text   NOT NULL,
    call_seq        bigint NOT NULL,
    result_seq      bigint,
    CONSTRAINT message_tool_calls_pkey PRIMARY KEY (conversation_id, tool_call_id)
);

-- Messages a user wrote, over all conversations (the per-user limit reads it in the append).
CREATE TABLE user_message_counts (
    user_id       uuid    PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    message_count integer NOT NULL DEFAULT 0
);
INSERT INTO user_message_counts (user_id, message_count)
SELECT m.sender_id, count(*) FROM messages AS m GROUP BY m.sender_id;

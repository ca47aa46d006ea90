-- Attachments (README "Attachments"): files kept in PostgreSQL itself, so one backup holds
-- everything, streamed in and out in chunks.
-- * attachments: one row per file and uploader (uploaded into a conversation where the
--   uploader may append, but the uploader's, not the conversation's): its name, the media type it is served as
--   (sniffed from its bytes) and the one the client declared, size and SHA-256. A user's
--   identical files are one row (attachments_user_sha256_key, over finished uploads). state
--   is 'uploading' while the bytes arrive (such a row is never shown nor referenced) and
--   'ready' once they are all in. orphaned_at: since when no message references the file (its
--   upload's end at first; NULL while a message does): `mnemo attachments gc` deletes a file
--   orphaned for longer than APP_ATTACHMENT_GRACE_SECONDS, found by attachments_orphaned_idx.
-- * attachment_chunks: the bytes, in chunks of 1 MiB (the last one shorter), numbered from 0.
--   Stored uncompressed out of line (STORAGE EXTERNAL): files are mostly compressed already,
--   and PostgreSQL reads a slice of an uncompressed value without reading all of it (a Range
--   request). Large objects were measured too (bench/attachments): README "Attachments" says
--   why chunks won.
-- * attachment_thumbnails: an image's thumbnail, made on its first request; or why none can
--   be made (refused: a decompression bomb, a corrupt image), so it is not tried again.
-- * message_attachments: which message references which file (a `file` part naming it),
--   written in the statement that writes the message. Its foreign key to attachments takes a
--   key-share lock on the file, so a collection (FOR UPDATE SKIP LOCKED) never deletes a file
--   a concurrent send references; triggers keep attachments.orphaned_at.
-- * attachment_usage: the bytes each user's files take, finished or arriving, grown chunk by
--   chunk with the quota (APP_ATTACHMENT_QUOTA_BYTES) checked in the same statement.
-- Attachments are per user, not per conversation (a file is referenced from any conversation
-- its uploader, or a reader of it, writes to), so they are not keyed by conversation_id:
-- distributed by conversation (Citus), they would be a table of their own, keyed by user_id.
-- depends: 20261206_09_s8l4m-sessions-limits

CREATE TABLE attachments (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            text        NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 1024),
    media_type      text        NOT NULL CHECK (octet_length(media_type) BETWEEN 3 AND 255),
    declared_type   text        CHECK (octet_length(declared_type) <= 255),
    type_mismatch   boolean     NOT NULL DEFAULT false,
    size            bigint      NOT NULL DEFAULT 0 CHECK (size >= 0),
    sha256          bytea       CHECK (octet_length(sha256) = 32),
    state           text        NOT NULL DEFAULT 'uploading'
                                CHECK (state IN ('uploading', 'ready')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    orphaned_at     timestamptz DEFAULT now(),
    CONSTRAINT attachments_ready_hashed CHECK (state = 'uploading' OR sha256 IS NOT NULL)
);
CREATE UNIQUE INDEX attachments_user_sha256_key ON attachments (user_id, sha256)
    WHERE state = 'ready';
CREATE INDEX attachments_orphaned_idx ON attachments (orphaned_at)
    WHERE orphaned_at IS NOT NULL;

CREATE TABLE attachment_chunks (
    attachment_id uuid    NOT NULL REFERENCES attachments (id) ON DELETE CASCADE,
    n             integer NOT NULL CHECK (n >= 0),
    data          bytea   NOT NULL CHECK (octet_length(data) BETWEEN 1 AND 1048576),
    PRIMARY KEY (attachment_id, n)
);
ALTER TABLE attachment_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE attachment_thumbnails (
    attachment_id uuid        PRIMARY KEY REFERENCES attachments (id) ON DELETE CASCADE,
    media_type    text,
    data          bytea,
    width         integer,
    height        integer,
    refused       text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT attachment_thumbnails_made_or_refused
        CHECK ((data IS NOT NULL AND media_type IS NOT NULL) <> (refused IS NOT NULL))
);

CREATE TABLE message_attachments (
    conversation_id uuid   NOT NULL,
    seq             bigint NOT NULL,
    attachment_id   uuid   NOT NULL REFERENCES attachments (id),
    PRIMARY KEY (conversation_id, seq, attachment_id),
    FOREIGN KEY (conversation_id, seq) REFERENCES messages (conversation_id, seq)
        ON DELETE CASCADE
);
CREATE INDEX message_attachments_attachment_idx
    ON message_attachments (attachment_id, conversation_id);

CREATE TABLE attachment_usage (
    user_id uuid   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    bytes   bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0)
);

-- The files of $2 that reader $1 may read: finished, and theirs or referenced by a message of
-- a conversation where they are a member whose role may 'read'. The one statement of that
-- rule, for every query that reads a file or checks a reference: a set-returning SQL function
-- that is STABLE and one SELECT, so the planner inlines it into each query (its indexes show
-- in their plans, tests/dal/test_attachment_plans.py).
CREATE FUNCTION mnemo_readable_attachments(reader uuid, ids uuid[]) RETURNS SETOF attachments
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT a.*
      FROM attachments AS a
     WHERE a.id = ANY (ids)
       AND a.state = 'ready'
       AND (a.user_id = reader
            OR EXISTS (SELECT 1
                         FROM message_attachments AS r
                         JOIN conversation_members AS mm
                           ON mm.conversation_id = r.conversation_id
                          AND mm.user_id = reader
                        WHERE r.attachment_id = a.id
                          AND mnemo_may(mm.role, 'read')))
$$;

-- A referenced file is not orphaned (an update only when it was: the first reference). Row
-- triggers, not statement triggers: a statement trigger would run for every message written,
-- with a file or not (the append statement always names message_attachments); a row trigger
-- runs only for references.
CREATE FUNCTION mnemo_attachment_referenced() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE attachments AS a
       SET orphaned_at = NULL
     WHERE a.id = NEW.attachment_id
       AND a.orphaned_at IS NOT NULL;
    RETURN NULL;
END
$$;

-- A file whose last reference went (a retraction, a deleted conversation) is orphaned from
-- now on. Its row is locked first; the check that no reference is left is the next statement,
-- whose snapshot sees what any transaction that held the lock before committed: two
-- concurrent removals of its last two references never both see the other's still there.
CREATE FUNCTION mnemo_attachment_unreferenced() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM 1 FROM attachments AS a WHERE a.id = OLD.attachment_id FOR UPDATE;
    UPDATE attachments AS a
       SET orphaned_at = now()
     WHERE a.id = OLD.attachment_id
       AND a.orphaned_at IS NULL
       AND NOT EXISTS (SELECT 1
                         FROM message_attachments AS m
                        WHERE m.attachment_id = a.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER message_attachments_referenced
    AFTER INSERT ON message_attachments
    FOR EACH ROW EXECUTE FUNCTION mnemo_attachment_referenced();
CREATE TRIGGER message_attachments_unreferenced
    AFTER DELETE ON message_attachments
    FOR EACH ROW EXECUTE FUNCTION mnemo_attachment_unreferenced();

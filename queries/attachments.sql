-- Attachments (README "Attachments"): files kept in PostgreSQL as 1 MiB bytea chunks,
-- uploaded chunk by chunk (each chunk its own statement: a slow client holds no connection
-- between chunks), deduplicated per uploader by SHA-256, referenced from messages' file parts
-- (message_attachments, written by the message statements of messages.sql).
-- Who may read a file: its uploader, and every member whose role may 'read' a conversation
-- where a message references it. Anyone else finds nothing (NotFound), never a hint that it
-- exists; an upload still under way ('uploading') is nobody's to read. Every statement that
-- reads a file says so through mnemo_readable_attachments (migration 20261207_01), inlined.
-- A file's url (Attachment.url) is where the app serves it, '/v1/attachments/<id>' (the path
-- a message file part's url names: dal.records.base.ATTACHMENT_PATH), returned by the queries
-- so that a record is its row and renders without pydantic (app/responses.py).

-- name: insert_attachment
-- Start an upload into conversation $2: the file's row, 'uploading', with no bytes yet, if
-- the caller is a member whose role may 'append'. Its media type is set when the upload ends.
-- No row: not a member (nothing written); allowed false: the role may not append (nothing
-- written); else id is the new row's.
-- returns: columns allowed, id
-- uses: conversation_members_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 id uuid
-- $4 name text
-- $5 declared_type text         NULL: none declared
WITH member AS (
    SELECT mnemo_may(mm.role, 'append') AS allowed
      FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), inserted AS (
    INSERT INTO attachments (id, user_id, name, media_type, declared_type)
    SELECT $3, $1, $4, 'application/octet-stream', $5
      FROM member AS m
     WHERE m.allowed
    RETURNING id
)
SELECT m.allowed, i.id
  FROM member AS m
  LEFT JOIN inserted AS i ON true;

-- name: insert_attachment_chunk
-- Store chunk $3 of the caller's upload $2, and count its bytes into the file's size and the
-- caller's usage, in one statement. The usage row is written first and only while it stays
-- within the quota $5 (0: none): an upsert locks the newest version of the row, so concurrent
-- uploads of one user add up exactly and never pass the quota together. uploading false: no
-- such upload of the caller's (finished, aborted or collected; nothing written); stored
-- false: the quota would be passed (nothing written).
-- returns: columns uploading, stored
-- uses: attachments_pkey, attachment_usage_pkey, attachment_chunks_pkey
-- $1 user_id uuid
-- $2 attachment_id uuid
-- $3 n int4
-- $4 data bytea
-- $5 quota int8                 APP_ATTACHMENT_QUOTA_BYTES (0: no quota)
WITH upload AS (
    SELECT a.id
      FROM attachments AS a
     WHERE a.id = $2
       AND a.user_id = $1
       AND a.state = 'uploading'
), used AS (
    INSERT INTO attachment_usage AS u (user_id, bytes)
    SELECT $1, octet_length($4::bytea)
      FROM upload
     WHERE $5::int8 = 0
        OR octet_length($4::bytea) <= $5::int8
        ON CONFLICT (user_id) DO UPDATE
       SET bytes = u.bytes + excluded.bytes
     WHERE $5::int8 = 0
        OR u.bytes + excluded.bytes <= $5::int8
    RETURNING u.bytes
), grown AS (
    UPDATE attachments AS a
       SET size = a.size + octet_length($4::bytea)
      FROM used
     WHERE a.id = $2
), chunk AS (
    INSERT INTO attachment_chunks (attachment_id, n, data)
    SELECT $2, $3, $4::bytea
      FROM used
)
SELECT EXISTS (SELECT 1 FROM upload) AS uploading,
       EXISTS (SELECT 1 FROM used) AS stored;

-- name: update_attachment_ready
-- End the caller's upload $2, whose bytes hash to $3: it becomes 'ready', served as $4, and
-- orphaned from now (no message references it yet) — unless the caller already has a ready
-- file with these bytes: then that one is returned (created false; its grace period, if no
-- message references it, starts again) and this upload's row, chunks and usage go. The
-- existing file's row is locked (a collection running meanwhile skips it, or deleted it
-- first: then this upload becomes the file). Two identical uploads ending at once: the second
-- to commit fails on attachments_user_sha256_key, and the gateway runs this again (it then
-- finds the first). No row: no such upload of the caller's.
-- returns: Attachment + created
-- uses: attachments_user_sha256_key, attachments_pkey, attachment_usage_pkey
-- $1 user_id uuid
-- $2 attachment_id uuid
-- $3 sha256 bytea
-- $4 media_type text
-- $5 type_mismatch bool
WITH upload AS (
    SELECT a.id, a.size
      FROM attachments AS a
     WHERE a.id = $2
       AND a.user_id = $1
       AND a.state = 'uploading'
), existing AS (
    SELECT a.id
      FROM attachments AS a
     WHERE a.user_id = $1
       AND a.sha256 = $3
       AND a.state = 'ready'
       AND EXISTS (SELECT 1 FROM upload)
       FOR UPDATE OF a
), touched AS (
    UPDATE attachments AS a
       SET orphaned_at = CASE WHEN a.orphaned_at IS NULL THEN NULL ELSE now() END
      FROM existing AS e
     WHERE a.id = e.id
    RETURNING a.id, a.user_id, a.name, a.media_type, a.declared_type, a.type_mismatch, a.size,
              encode(a.sha256, 'hex') AS sha256, a.created_at,
              '/v1/attachments/' || a.id::text AS url, false AS created
), dropped AS (
    DELETE FROM attachments AS a
     USING upload AS p
     WHERE a.id = p.id
       AND EXISTS (SELECT 1 FROM touched)
    RETURNING a.size
), released AS (
    UPDATE attachment_usage AS u
       SET bytes = u.bytes - d.size
      FROM dropped AS d
     WHERE u.user_id = $1
       AND d.size > 0
), ready AS (
    UPDATE attachments AS a
       SET state = 'ready',
           sha256 = $3,
           media_type = $4,
           type_mismatch = $5,
           orphaned_at = now()
      FROM upload AS p
     WHERE a.id = p.id
       AND NOT EXISTS (SELECT 1 FROM existing)
    RETURNING a.id, a.user_id, a.name, a.media_type, a.declared_type, a.type_mismatch, a.size,
              encode(a.sha256, 'hex') AS sha256, a.created_at,
              '/v1/attachments/' || a.id::text AS url, true AS created
)
SELECT id, user_id, name, media_type, declared_type, type_mismatch, size, sha256, created_at,
       url, created
  FROM touched
 UNION ALL
SELECT id, user_id, name, media_type, declared_type, type_mismatch, size, sha256, created_at,
       url, created
  FROM ready;

-- name: delete_attachment_upload
-- Abandon the caller's upload $2 (a client gone, a limit passed, an error): its row and
-- chunks go and its bytes leave the caller's usage, in one statement. A finished file is not
-- touched. Returns the bytes released; no row: no such upload.
-- returns: value
-- uses: attachments_pkey, attachment_usage_pkey, attachment_chunks_pkey
-- $1 user_id uuid
-- $2 attachment_id uuid
WITH dropped AS (
    DELETE FROM attachments AS a
     WHERE a.id = $2
       AND a.user_id = $1
       AND a.state = 'uploading'
    RETURNING a.size
), released AS (
    UPDATE attachment_usage AS u
       SET bytes = u.bytes - d.size
      FROM dropped AS d
     WHERE u.user_id = $1
       AND d.size > 0
)
SELECT d.size
  FROM dropped AS d;

-- name: get_attachment
-- A file the caller may read (its uploader, or a member who may read a conversation where a
-- message references it). No row: missing, still uploading, or not the caller's to read.
-- returns: Attachment
-- uses: attachments_pkey, message_attachments_attachment_idx, conversation_members_pkey
-- $1 user_id uuid
-- $2 attachment_id uuid
SELECT a.id, a.user_id, a.name, a.media_type, a.declared_type, a.type_mismatch, a.size,
       encode(a.sha256, 'hex') AS sha256, a.created_at, '/v1/attachments/' || a.id::text AS url
  FROM mnemo_readable_attachments($1, ARRAY[$2::uuid]) AS a;

-- name: list_attachment_chunks
-- Bytes $3 to $4 (inclusive, 0-based) of a file the caller may read (get_attachment's rule,
-- checked again for every batch: a reader removed from the conversation stops getting bytes),
-- as the slices of the chunks ($5 bytes each, the last shorter) that hold them, in order.
-- Chunks are stored uncompressed (STORAGE EXTERNAL), so a slice reads only its part of its
-- chunk; a chunk the range covers whole is sent as it is (a slice of it would be a copy:
-- 1.5-2x the time, bench/attachments). No row: the caller may not read it (or those bytes are
-- not there).
-- returns: columns n, data
-- uses: attachments_pkey, message_attachments_attachment_idx, conversation_members_pkey
-- uses: attachment_chunks_pkey
-- $1 user_id uuid
-- $2 attachment_id uuid
-- $3 first int8
-- $4 last int8
-- $5 chunk_size int8
SELECT c.n,
       CASE WHEN $3::int8 <= c.n::int8 * $5::int8
                 AND c.n::int8 * $5::int8 + octet_length(c.data) - 1 <= $4::int8
            THEN c.data  -- the whole chunk (its length read from its TOAST pointer): no copy
            ELSE substring(c.data
                           FROM (greatest($3::int8 - c.n::int8 * $5::int8, 0) + 1)::int4
                           FOR (least($4::int8 - c.n::int8 * $5::int8, $5::int8 - 1)
                                - greatest($3::int8 - c.n::int8 * $5::int8, 0) + 1)::int4)
       END AS data
  FROM attachment_chunks AS c
 WHERE c.attachment_id = $2
   AND c.n BETWEEN ($3::int8 / $5::int8)::int4 AND ($4::int8 / $5::int8)::int4
   AND EXISTS (SELECT 1 FROM mnemo_readable_attachments($1, ARRAY[$2::uuid]))
 ORDER BY c.n;

-- name: get_attachment_thumbnail
-- A file the caller may read (get_attachment's rule) with its thumbnail, or why none can be
-- made: all thumbnail columns NULL when none was tried yet. No row: not the caller's to read.
-- returns: Thumbnail
-- uses: attachments_pkey, message_attachments_attachment_idx, conversation_members_pkey
-- uses: attachment_thumbnails_pkey
-- $1 user_id uuid
-- $2 attachment_id uuid
SELECT a.media_type AS source_type, a.size AS source_size, t.media_type, t.data, t.width,
       t.height, t.refused
  FROM mnemo_readable_attachments($1, ARRAY[$2::uuid]) AS a
  LEFT JOIN attachment_thumbnails AS t ON t.attachment_id = a.id;

-- name: insert_attachment_thumbnail
-- Keep a file's thumbnail ($3-$6), or why none can be made ($7), once: when another request
-- made it meanwhile, that one stays. Returns whether the file is still there.
-- returns: value
-- uses: attachments_pkey, attachment_thumbnails_pkey
-- $1 attachment_id uuid
-- $2 media_type text            NULL when refused
-- $3 data bytea                 NULL when refused
-- $4 width int4
-- $5 height int4
-- $6 refused text               NULL when made
WITH kept AS (
    INSERT INTO attachment_thumbnails (attachment_id, media_type, data, width, height, refused)
    SELECT a.id, $2, $3, $4, $5, $6
      FROM attachments AS a
     WHERE a.id = $1
        ON CONFLICT (attachment_id) DO NOTHING
)
SELECT EXISTS (SELECT 1 FROM attachments AS a WHERE a.id = $1);

-- name: list_attachments_of_conversation
-- A page of the files conversation $2's messages reference, by message seq then file id,
-- after the keyset ($3, $4) (0 and any id for the first page). One row with NULL file
-- columns: the caller is a member but the page is empty, or may not read (allowed false);
-- no row: not a member.
-- returns: MessageAttachment + allowed
-- uses: conversation_members_pkey, message_attachments_pkey, attachments_pkey, messages_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 seq int8                   cursor
-- $4 attachment_id uuid         cursor
-- $5 limit int8
SELECT mb.allowed, x.id, x.user_id, x.name, x.media_type, x.declared_type, x.type_mismatch,
       x.size, x.sha256, x.created_at, x.url, x.message_id, x.seq
  FROM (SELECT mnemo_may(mm.role, 'read') AS allowed
          FROM conversation_members AS mm
         WHERE mm.conversation_id = $2
           AND mm.user_id = $1) AS mb
  LEFT JOIN LATERAL (
        SELECT a.id, a.user_id, a.name, a.media_type, a.declared_type, a.type_mismatch, a.size,
               encode(a.sha256, 'hex') AS sha256, a.created_at,
               '/v1/attachments/' || a.id::text AS url, m.id AS message_id, r.seq
          FROM message_attachments AS r
          JOIN attachments AS a ON a.id = r.attachment_id
          JOIN messages AS m ON m.conversation_id = r.conversation_id AND m.seq = r.seq
         WHERE r.conversation_id = $2
           AND (r.seq, r.attachment_id) > ($3::int8, $4::uuid)
           AND mb.allowed
         ORDER BY r.seq, r.attachment_id
         LIMIT $5) AS x ON true;

-- name: list_attachments_of_message
-- The files message $3 of conversation $2 references, by id. One row with NULL file columns:
-- the message references none (message_id set), is missing (message_id NULL), or the caller
-- may not read (allowed false); no row: not a member.
-- returns: MessageAttachment + allowed
-- uses: conversation_members_pkey, messages_conversation_id_id_key, message_attachments_pkey
-- uses: attachments_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 message_id uuid
SELECT mb.allowed, a.id, a.user_id, a.name, a.media_type, a.declared_type, a.type_mismatch,
       a.size, encode(a.sha256, 'hex') AS sha256, a.created_at,
       '/v1/attachments/' || a.id::text AS url, m.id AS message_id, m.seq
  FROM (SELECT mnemo_may(mm.role, 'read') AS allowed
          FROM conversation_members AS mm
         WHERE mm.conversation_id = $2
           AND mm.user_id = $1) AS mb
  LEFT JOIN messages AS m
    ON mb.allowed
   AND m.conversation_id = $2
   AND m.id = $3
  LEFT JOIN message_attachments AS r
    ON r.conversation_id = m.conversation_id
   AND r.seq = m.seq
  LEFT JOIN attachments AS a ON a.id = r.attachment_id
 ORDER BY a.id;

-- name: delete_orphaned_attachments
-- Collect one batch of garbage: up to $3 files no message has referenced for $1 seconds
-- (uploaded but never sent, or whose messages were retracted or deleted), and uploads begun
-- more than max($1, $2) seconds ago and never finished (a process gone mid-upload), oldest
-- first; with their chunks and thumbnails, and their bytes out of their uploaders' usage.
-- Rows are locked FOR UPDATE SKIP LOCKED: a file a send is referencing right now is locked by
-- it (the reference's foreign key) and skipped, and one whose first reference committed after
-- this statement began is re-read as referenced (orphaned_at NULL) and left alone.
-- returns: columns attachments, bytes
-- uses: attachments_orphaned_idx, attachments_pkey, attachment_usage_pkey, attachment_chunks_pkey
-- uses: attachment_thumbnails_pkey, message_attachments_attachment_idx
-- $1 grace float8               APP_ATTACHMENT_GRACE_SECONDS
-- $2 stale float8               seconds after which an unfinished upload is abandoned
-- $3 batch int8
WITH doomed AS (
    SELECT a.id
      FROM attachments AS a
     WHERE a.orphaned_at < now() - make_interval(secs => $1::float8)
       AND (a.state = 'ready'
            OR a.orphaned_at < now() - make_interval(secs => greatest($1::float8, $2::float8)))
     ORDER BY a.orphaned_at
     LIMIT $3
       FOR UPDATE SKIP LOCKED
), gone AS (
    -- by key (an array of ids: a join with the CTE may be planned as a scan of the table)
    DELETE FROM attachments AS a
     WHERE a.id = ANY (ARRAY(SELECT d.id FROM doomed AS d))
    RETURNING a.user_id, a.size
), released AS (
    UPDATE attachment_usage AS u
       SET bytes = u.bytes - g.size
      FROM (SELECT user_id, sum(size) AS size FROM gone GROUP BY user_id) AS g
     WHERE u.user_id = g.user_id
)
SELECT count(*) AS attachments, coalesce(sum(g.size), 0)::int8 AS bytes
  FROM gone AS g;

-- name: count_orphaned_attachments
-- What delete_orphaned_attachments would collect now, all batches (a dry run): files and
-- bytes. Nothing is locked or changed.
-- returns: columns attachments, bytes
-- uses: attachments_orphaned_idx
-- $1 grace float8
-- $2 stale float8
SELECT count(*) AS attachments, coalesce(sum(a.size), 0)::int8 AS bytes
  FROM attachments AS a
 WHERE a.orphaned_at < now() - make_interval(secs => $1::float8)
   AND (a.state = 'ready'
        OR a.orphaned_at < now() - make_interval(secs => greatest($1::float8, $2::float8)));

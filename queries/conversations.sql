-- Conversations. Every query is scoped by the caller ($1 user_id): a conversation is visible
-- to its members (conversation_members) and invisible, never forbidden, to anyone else. What a
-- member may change is what conversation_rights grants the member's role (mnemo_may).
-- conversations.user_id is the owner member: the lists read the owner's conversations by
-- conversations_user_updated_idx and the others the caller is a member of by
-- conversation_members_user_idx, merged.

-- name: insert_conversation
-- Create a conversation for a user; a missing user violates the foreign key (NotFound). An id
-- that is taken (conversation ids are global) stores nothing and returns no row, without an
-- error that would abort a caller's transaction: get_conversation_retried then tells a retry
-- from a conflict. draft_digest keeps what this request asked for. The creator becomes its
-- owner member (trigger conversations_owner_member).
-- returns: Conversation
-- $1 user_id uuid
-- $2 id uuid
-- $3 title text
-- $4 metadata jsonb
-- $5 tags text[]
-- $6 thread_id text             the agent thread serving it, or NULL
-- $7 kind text                  'group' or 'direct' (at most two members)
INSERT INTO conversations (id, user_id, title, metadata, tags, thread_id, draft_digest, kind)
VALUES ($2, $1, $3, $4, $5, $6, mnemo_conversation_digest($3, $4, $5, $6), $7)
    ON CONFLICT (id) DO NOTHING
RETURNING id, user_id, title, metadata, tags, thread_id, version, message_count, last_message_at,
          created_at, updated_at, kind, member_count, leaf_seq, tool_integrity;

-- name: get_conversation_retried
-- The caller's conversation $2 if the request that created it is this one (same title,
-- metadata, tags and thread; compared by digest, so edits since do not matter): a retry.
-- No row when it is someone else's or was created with other content, alike (a conflict,
-- which must not tell whose). Rows from before digests were kept compare what they hold now.
-- returns: Conversation
-- uses: conversations_pkey
-- $1 user_id uuid
-- $2 id uuid
-- $3 title text
-- $4 metadata jsonb
-- $5 tags text[]
-- $6 thread_id text
SELECT id, user_id, title, metadata, tags, thread_id, version, message_count, last_message_at,
       created_at, updated_at, kind, member_count, leaf_seq, tool_integrity
  FROM conversations
 WHERE id = $2
   AND user_id = $1
   AND coalesce(draft_digest = mnemo_conversation_digest($3, $4, $5, $6),
                draft_digest IS NULL AND (title, metadata, tags) = ($3, $4, $5));

-- name: get_conversation
-- A conversation the caller may read, by id.
-- returns: Conversation
-- uses: conversations_pkey, conversation_members_pkey
-- $1 user_id uuid
-- $2 id uuid
SELECT id, user_id, title, metadata, tags, thread_id, version, message_count, last_message_at,
       created_at, updated_at, kind, member_count, leaf_seq, tool_integrity
  FROM conversations
 WHERE id = $2
   AND EXISTS (SELECT 1
                 FROM conversation_members AS mm
                WHERE mm.conversation_id = $2
                  AND mm.user_id = $1
                  AND mnemo_may(mm.role, 'read'));

-- fragment: conversation_window
-- The list queries' inner rows: a conversation, its place n in the page's order and the bytes
-- of the page up to it (bytes) and of itself (own_bytes), over the window travel that each
-- query defines (its order) and the FROM and WHERE that follow the fragment.
SELECT id, user_id, title, metadata, tags, thread_id, version, message_count,
       last_message_at, created_at, updated_at, kind, member_count, leaf_seq, tool_integrity,
       row_number() OVER travel AS n,
       (sum(octet_length(title) + octet_length(metadata::text)
            + octet_length(tags::text) + coalesce(octet_length(thread_id), 0))
           OVER travel)::int8 AS bytes,
       octet_length(title) + octet_length(metadata::text)
           + octet_length(tags::text) + coalesce(octet_length(thread_id), 0)
           AS own_bytes

-- name: list_conversations
-- First page of the caller's conversations, most recent activity first. A page ends at
-- $2 - 1 rows or $3 bytes (title, metadata, tags and thread as text, summed in page order),
-- whichever comes first, but holds at least one conversation; the first row after the page
-- comes back with NULL metadata (only to say that more exist). Metadata is printed to be
-- measured, for the page_size rows read at most.
-- returns: Conversation
-- uses: conversations_user_updated_idx, conversation_members_user_idx, conversations_pkey
-- $1 user_id uuid
-- $2 page_size int8             rows wanted + 1
-- $3 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT w.id, w.user_id, w.title, CASE WHEN w.in_page THEN w.metadata END AS metadata, w.tags,
       w.thread_id, w.version, w.message_count, w.last_message_at, w.created_at, w.updated_at,
       w.kind, w.member_count, w.leaf_seq, w.tool_integrity
  FROM (
        SELECT r.id, r.user_id, r.title, r.metadata, r.tags, r.thread_id, r.version,
               r.message_count, r.last_message_at, r.created_at, r.updated_at, r.kind,
               r.member_count, r.leaf_seq, r.tool_integrity, r.n, r.bytes,
               r.own_bytes, r.n < $2 AND (r.n = 1 OR r.bytes <= $3) AS in_page
          FROM (
                {{conversation_window}}
                  FROM ((SELECT o.*
                           FROM conversations AS o
                          WHERE o.user_id = $1
                          ORDER BY o.updated_at DESC, o.id DESC
                          LIMIT $2)
                        UNION ALL
                        (SELECT s.*
                           FROM conversation_members AS mm
                           JOIN conversations AS s ON s.id = mm.conversation_id
                          WHERE mm.user_id = $1
                            AND mm.role <> 'owner'
                            AND mnemo_may(mm.role, 'read')
                          ORDER BY s.updated_at DESC, s.id DESC
                          LIMIT $2)) AS visible
                WINDOW travel AS (ORDER BY updated_at DESC, id DESC ROWS UNBOUNDED PRECEDING)
                 ORDER BY updated_at DESC, id DESC
                 LIMIT $2
               ) AS r
       ) AS w
 -- the page, and the first row after it (the one before it is in the page)
 WHERE w.n <= 2 OR w.bytes - w.own_bytes <= $3
 ORDER BY w.updated_at DESC, w.id DESC;

-- name: list_conversations_before
-- Next page of the caller's conversations, after the keyset cursor (updated_at, id) of the
-- last row of the previous page. The row comparison matches the index order exactly, so
-- the scan starts at the cursor instead of filtering from the top. Pages end as in
-- list_conversations.
-- returns: Conversation
-- uses: conversations_user_updated_idx, conversation_members_user_idx, conversations_pkey
-- $1 user_id uuid
-- $2 updated_at timestamptz     cursor: updated_at of the last row seen
-- $3 id uuid                    cursor: id of the last row seen
-- $4 page_size int8             rows wanted + 1
-- $5 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT w.id, w.user_id, w.title, CASE WHEN w.in_page THEN w.metadata END AS metadata, w.tags,
       w.thread_id, w.version, w.message_count, w.last_message_at, w.created_at, w.updated_at,
       w.kind, w.member_count, w.leaf_seq, w.tool_integrity
  FROM (
        SELECT r.id, r.user_id, r.title, r.metadata, r.tags, r.thread_id, r.version,
               r.message_count, r.last_message_at, r.created_at, r.updated_at, r.kind,
               r.member_count, r.leaf_seq, r.tool_integrity, r.n, r.bytes,
               r.own_bytes, r.n < $4 AND (r.n = 1 OR r.bytes <= $5) AS in_page
          FROM (
                {{conversation_window}}
                  FROM ((SELECT o.*
                           FROM conversations AS o
                          WHERE o.user_id = $1
                            AND (o.updated_at, o.id) < ($2, $3)
                          ORDER BY o.updated_at DESC, o.id DESC
                          LIMIT $4)
                        UNION ALL
                        (SELECT s.*
                           FROM conversation_members AS mm
                           JOIN conversations AS s ON s.id = mm.conversation_id
                          WHERE mm.user_id = $1
                            AND mm.role <> 'owner'
                            AND mnemo_may(mm.role, 'read')
                            AND (s.updated_at, s.id) < ($2, $3)
                          ORDER BY s.updated_at DESC, s.id DESC
                          LIMIT $4)) AS visible
                WINDOW travel AS (ORDER BY updated_at DESC, id DESC ROWS UNBOUNDED PRECEDING)
                 ORDER BY updated_at DESC, id DESC
                 LIMIT $4
               ) AS r
       ) AS w
 -- the page, and the first row after it (the one before it is in the page)
 WHERE w.n <= 2 OR w.bytes - w.own_bytes <= $5
 ORDER BY w.updated_at DESC, w.id DESC;

-- name: update_conversation
-- Change title, metadata or tags (NULL keeps each) and bump the version. With an expected
-- version, the update happens only if it still matches (optimistic concurrency); NULL
-- comes back both when the row is missing and when the version is stale.
-- returns: Conversation
-- uses: conversations_pkey, conversation_members_pkey
-- $1 user_id uuid
-- $2 id uuid
-- $3 title text                 NULL keeps it
-- $4 metadata jsonb             NULL keeps it; otherwise replaces it whole
-- $5 tags text[]                 NULL keeps them
-- $6 expected_version int4      NULL: no check
-- $7 thread_id text             the thread it names, if $8 (NULL: none); a thread another
--                               conversation of the user names violates
--                               conversations_user_thread_key
-- $8 set_thread_id bool         false keeps thread_id as it is
-- $9 tool_integrity text        NULL keeps it
-- The caller's role must be one that may 'update_conversation'; only the owner links a thread
-- (threads are the owner's). No row for a member without the right either: the gateway
-- tells the cases apart.
UPDATE conversations AS c
   SET title = coalesce($3, c.title),
       metadata = coalesce($4, c.metadata),
       tags = coalesce($5, c.tags),
       thread_id = CASE WHEN $8 THEN $7 ELSE c.thread_id END,
       tool_integrity = coalesce($9, c.tool_integrity),
       version = c.version + 1,
       updated_at = now()
  FROM conversation_members AS mm
 WHERE c.id = $2
   AND mm.conversation_id = $2
   AND mm.user_id = $1
   AND mnemo_may(mm.role, 'update_conversation')
   AND (NOT $8 OR c.user_id = $1)
   AND ($6::int4 IS NULL OR c.version = $6)
RETURNING c.id, c.user_id, c.title, c.metadata, c.tags, c.thread_id, c.version,
          c.message_count, c.last_message_at, c.created_at, c.updated_at, c.kind,
          c.member_count, c.leaf_seq, c.tool_integrity;

-- name: delete_conversation
-- Delete a conversation; its messages and members go with it (ON DELETE CASCADE). The
-- caller's role must be one that may 'delete_conversation' (the owner); no row otherwise.
-- returns: value
-- uses: conversations_pkey, conversation_members_pkey
-- $1 user_id uuid
-- $2 id uuid
DELETE FROM conversations AS c
 USING conversation_members AS mm
 WHERE c.id = $2
   AND mm.conversation_id = $2
   AND mm.user_id = $1
   AND mnemo_may(mm.role, 'delete_conversation')
RETURNING c.id;

-- Filtered lists (README "Search"): list_conversations with q, tags or metadata. Same order,
-- cursor and page ends as list_conversations_before; a missing cursor is the infinite one
-- (an index condition under any plan, where "NULL or" would be a filter). Each access path is
-- its own query, served by its index under a generic plan too; the other filters given are
-- conditions on what it finds.

-- name: list_conversations_matching
-- The caller's conversations whose title matches the text query, or that hold a message that
-- does: the title column of conversations_search_idx, and messages_search_idx for messages
-- (user_id with the tsquery), the ids merged, then read by conversations_pkey. With tags
-- ($5: any of them, all of them if $6) and metadata ($7) as filters. Conversations shared
-- with the caller (a member, not the owner) are searched message by message: their cost grows
-- with their size, where the owner's are served by the indexes.
-- returns: Conversation
-- uses: conversations_search_idx, messages_search_idx, conversations_pkey
-- uses: conversation_members_user_idx
-- $1 user_id uuid
-- $2 terms text[]               the parsed query (mnemo_search_query)
-- $3 negated bool[]
-- $4 clauses int4[]
-- $5 tags text[]                NULL: any tags
-- $6 all_tags bool              true: every tag of $5, false: any
-- $7 metadata jsonb             NULL: any
-- $8 updated_at timestamptz     cursor: updated_at of the last row seen; NULL: first page
-- $9 id uuid                    cursor: id of the last row seen
-- $10 page_size int8            rows wanted + 1
-- $11 max_bytes int8            APP_MAX_PAGE_BYTES
SELECT w.id, w.user_id, w.title, CASE WHEN w.in_page THEN w.metadata END AS metadata, w.tags,
       w.thread_id, w.version, w.message_count, w.last_message_at, w.created_at, w.updated_at,
       w.kind, w.member_count, w.leaf_seq, w.tool_integrity
  FROM (
        SELECT r.id, r.user_id, r.title, r.metadata, r.tags, r.thread_id, r.version,
               r.message_count, r.last_message_at, r.created_at, r.updated_at, r.kind,
               r.member_count, r.leaf_seq, r.tool_integrity, r.n, r.bytes,
               r.own_bytes, r.n < $10 AND (r.n = 1 OR r.bytes <= $11) AS in_page
          FROM (
                {{conversation_window}}
                  FROM ((SELECT o.*
                           FROM conversations AS o
                          WHERE o.id IN (SELECT t.id
                                           FROM conversations AS t
                                          WHERE t.user_id = $1
                                            AND mnemo_text_vector(t.title)
                                                @@ (SELECT mnemo_search_query($2, $3, $4))
                                          UNION
                                         SELECT m.conversation_id
                                           FROM messages AS m
                                          WHERE m.user_id = $1
                                            AND m.search_vector
                                                @@ (SELECT mnemo_search_query($2, $3, $4)))
                            AND o.user_id = $1
                            AND ($5::text[] IS NULL
                                 OR CASE WHEN $6 THEN o.tags @> $5 ELSE o.tags && $5 END)
                            AND ($7::jsonb IS NULL OR o.metadata @> $7)
                            AND (o.updated_at, o.id)
                                < (coalesce($8, 'infinity'::timestamptz),
                                   coalesce($9, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
                          ORDER BY o.updated_at DESC, o.id DESC
                          LIMIT $10)
                        UNION ALL
                        -- shared with the caller: their messages read by conversation
                        (SELECT s.*
                           FROM conversation_members AS mm
                           JOIN conversations AS s ON s.id = mm.conversation_id
                          WHERE mm.user_id = $1
                            AND mm.role <> 'owner'
                            AND mnemo_may(mm.role, 'read')
                            AND (mnemo_text_vector(s.title)
                                     @@ (SELECT mnemo_search_query($2, $3, $4))
                                 OR EXISTS (SELECT 1
                                              FROM messages AS sm
                                             WHERE sm.conversation_id = s.id
                                               AND sm.search_vector
                                                   @@ (SELECT mnemo_search_query($2, $3, $4))))
                            AND ($5::text[] IS NULL
                                 OR CASE WHEN $6 THEN s.tags @> $5 ELSE s.tags && $5 END)
                            AND ($7::jsonb IS NULL OR s.metadata @> $7)
                            AND (s.updated_at, s.id)
                                < (coalesce($8, 'infinity'::timestamptz),
                                   coalesce($9, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
                          ORDER BY s.updated_at DESC, s.id DESC
                          LIMIT $10)) AS visible
                WINDOW travel AS (ORDER BY updated_at DESC, id DESC ROWS UNBOUNDED PRECEDING)
                 ORDER BY updated_at DESC, id DESC
                 LIMIT $10
               ) AS r
       ) AS w
 -- the page, and the first row after it (the one before it is in the page)
 WHERE w.n <= 2 OR w.bytes - w.own_bytes <= $11
 ORDER BY w.updated_at DESC, w.id DESC;

-- name: list_conversations_tagged
-- The caller's conversations tagged with any of $2 (all of them if $3): the tags column of
-- conversations_search_idx with user_id (&&: any of them, which every conversation holding
-- all of them also matches; all-of is then checked on those rows). Metadata ($4) as a filter.
-- A user with few conversations may have them read by the list's index instead. The
-- conversations shared with the caller (a member, not the owner) are read by membership.
-- returns: Conversation
-- uses: conversations_search_idx, conversations_user_updated_idx
-- uses: conversation_members_user_idx
-- $1 user_id uuid
-- $2 tags text[]
-- $3 all_tags bool              true: every tag of $2, false: any
-- $4 metadata jsonb             NULL: any
-- $5 updated_at timestamptz     cursor: updated_at of the last row seen; NULL: first page
-- $6 id uuid                    cursor: id of the last row seen
-- $7 page_size int8             rows wanted + 1
-- $8 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT w.id, w.user_id, w.title, CASE WHEN w.in_page THEN w.metadata END AS metadata, w.tags,
       w.thread_id, w.version, w.message_count, w.last_message_at, w.created_at, w.updated_at,
       w.kind, w.member_count, w.leaf_seq, w.tool_integrity
  FROM (
        SELECT r.id, r.user_id, r.title, r.metadata, r.tags, r.thread_id, r.version,
               r.message_count, r.last_message_at, r.created_at, r.updated_at, r.kind,
               r.member_count, r.leaf_seq, r.tool_integrity, r.n, r.bytes,
               r.own_bytes, r.n < $7 AND (r.n = 1 OR r.bytes <= $8) AS in_page
          FROM (
                {{conversation_window}}
                  FROM ((SELECT o.*
                           FROM conversations AS o
                          WHERE o.user_id = $1
                            AND o.tags && $2
                            AND (NOT $3 OR o.tags @> $2)
                            AND ($4::jsonb IS NULL OR o.metadata @> $4)
                            AND (o.updated_at, o.id)
                                < (coalesce($5, 'infinity'::timestamptz),
                                   coalesce($6, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
                          ORDER BY o.updated_at DESC, o.id DESC
                          LIMIT $7)
                        UNION ALL
                        (SELECT s.*
                           FROM conversation_members AS mm
                           JOIN conversations AS s ON s.id = mm.conversation_id
                          WHERE mm.user_id = $1
                            AND mm.role <> 'owner'
                            AND mnemo_may(mm.role, 'read')
                            AND s.tags && $2
                            AND (NOT $3 OR s.tags @> $2)
                            AND ($4::jsonb IS NULL OR s.metadata @> $4)
                            AND (s.updated_at, s.id)
                                < (coalesce($5, 'infinity'::timestamptz),
                                   coalesce($6, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
                          ORDER BY s.updated_at DESC, s.id DESC
                          LIMIT $7)) AS visible
                WINDOW travel AS (ORDER BY updated_at DESC, id DESC ROWS UNBOUNDED PRECEDING)
                 ORDER BY updated_at DESC, id DESC
                 LIMIT $7
               ) AS r
       ) AS w
 -- the page, and the first row after it (the one before it is in the page)
 WHERE w.n <= 2 OR w.bytes - w.own_bytes <= $8
 ORDER BY w.updated_at DESC, w.id DESC;

-- name: list_conversations_by_metadata
-- The caller's conversations whose metadata contains $2: the metadata column of
-- conversations_search_idx with user_id (or, for few conversations, the list's index); those
-- shared with the caller by membership.
-- returns: Conversation
-- uses: conversations_search_idx, conversations_user_updated_idx
-- uses: conversation_members_user_idx
-- $1 user_id uuid
-- $2 metadata jsonb
-- $3 updated_at timestamptz     cursor: updated_at of the last row seen; NULL: first page
-- $4 id uuid                    cursor: id of the last row seen
-- $5 page_size int8             rows wanted + 1
-- $6 max_bytes int8             APP_MAX_PAGE_BYTES
SELECT w.id, w.user_id, w.title, CASE WHEN w.in_page THEN w.metadata END AS metadata, w.tags,
       w.thread_id, w.version, w.message_count, w.last_message_at, w.created_at, w.updated_at,
       w.kind, w.member_count, w.leaf_seq, w.tool_integrity
  FROM (
        SELECT r.id, r.user_id, r.title, r.metadata, r.tags, r.thread_id, r.version,
               r.message_count, r.last_message_at, r.created_at, r.updated_at, r.kind,
               r.member_count, r.leaf_seq, r.tool_integrity, r.n, r.bytes,
               r.own_bytes, r.n < $5 AND (r.n = 1 OR r.bytes <= $6) AS in_page
          FROM (
                {{conversation_window}}
                  FROM ((SELECT o.*
                           FROM conversations AS o
                          WHERE o.user_id = $1
                            AND o.metadata @> $2
                            AND (o.updated_at, o.id)
                                < (coalesce($3, 'infinity'::timestamptz),
                                   coalesce($4, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
                          ORDER BY o.updated_at DESC, o.id DESC
                          LIMIT $5)
                        UNION ALL
                        (SELECT s.*
                           FROM conversation_members AS mm
                           JOIN conversations AS s ON s.id = mm.conversation_id
                          WHERE mm.user_id = $1
                            AND mm.role <> 'owner'
                            AND mnemo_may(mm.role, 'read')
                            AND s.metadata @> $2
                            AND (s.updated_at, s.id)
                                < (coalesce($3, 'infinity'::timestamptz),
                                   coalesce($4, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
                          ORDER BY s.updated_at DESC, s.id DESC
                          LIMIT $5)) AS visible
                WINDOW travel AS (ORDER BY updated_at DESC, id DESC ROWS UNBOUNDED PRECEDING)
                 ORDER BY updated_at DESC, id DESC
                 LIMIT $5
               ) AS r
       ) AS w
 -- the page, and the first row after it (the one before it is in the page)
 WHERE w.n <= 2 OR w.bytes - w.own_bytes <= $6
 ORDER BY w.updated_at DESC, w.id DESC;

-- Workspace snapshots (README "Workspace snapshots"): a user's named panels documents. Every
-- query is scoped by the caller ($1 user_id): another user's snapshot is not found. Lists give
-- summaries (no panels: a page stays small however large its snapshots), newest first, keyset
-- on (created_at, id) after the previous page's last row (('infinity', any id) for the first).
-- A search pattern $n is a substring, matched case-insensitively (ILIKE) against the name and
-- the query text; its LIKE wildcards (% _ \) are escaped here, so they match themselves.

-- name: insert_snapshot
-- Save a snapshot. linked = false (and nothing written): $6 names a conversation the caller
-- may not read (missing, or not a member); task_linked = false (and nothing written): $7
-- names a task that is not the caller's (missing, or another user's).
-- returns: Snapshot + linked, task_linked
-- uses: conversation_members_pkey, tasks_pkey
-- $1 user_id uuid
-- $2 id uuid
-- $3 name text
-- $4 panels jsonb
-- $5 origin text
-- $6 conversation_id uuid       NULL: none
-- $7 task_id uuid               NULL: none
WITH link AS (
    SELECT $6::uuid IS NULL
           OR EXISTS (SELECT 1
                        FROM conversation_members AS mm
                       WHERE mm.conversation_id = $6::uuid
                         AND mm.user_id = $1
                         AND mnemo_may(mm.role, 'read')) AS linked,
           $7::uuid IS NULL
           OR EXISTS (SELECT 1
                        FROM tasks AS t
                       WHERE t.id = $7::uuid
                         AND t.user_id = $1) AS task_linked
), saved AS (
    INSERT INTO workspace_snapshots AS s (id, user_id, name, panels, origin, conversation_id,
                                          task_id)
    SELECT $2, $1, $3, $4, $5, $6, $7
      FROM link AS l
     WHERE l.linked
       AND l.task_linked
    RETURNING s.id, s.name, s.origin, s.conversation_id, s.task_id,
              jsonb_array_length(s.panels) AS panel_count, s.created_at, s.updated_at, s.panels,
              s.query_text
)
SELECT sv.id, sv.name, sv.origin, sv.conversation_id, sv.task_id, sv.panel_count, sv.created_at,
       sv.updated_at, sv.panels, sv.query_text, l.linked, l.task_linked
  FROM link AS l
  LEFT JOIN saved AS sv ON true;

-- name: get_snapshot
-- One of the caller's snapshots, whole. No row: missing or another user's.
-- returns: Snapshot
-- uses: workspace_snapshots_pkey
-- $1 user_id uuid
-- $2 id uuid
SELECT s.id, s.name, s.origin, s.conversation_id, s.task_id,
       jsonb_array_length(s.panels) AS panel_count, s.created_at, s.updated_at, s.panels,
       s.query_text
  FROM workspace_snapshots AS s
 WHERE s.id = $2
   AND s.user_id = $1;

-- name: update_snapshot
-- Rename a snapshot, replace its panels, link or unlink its conversation and its task (each
-- when given), and bump updated_at, in one statement. linked = false (and nothing changed): the
-- conversation $6 is one the caller may not read; task_linked = false (and nothing changed):
-- the task $8 is not the caller's. id NULL (both true): the snapshot is missing or another
-- user's.
-- returns: Snapshot + linked, task_linked
-- uses: workspace_snapshots_pkey, conversation_members_pkey, tasks_pkey
-- $1 user_id uuid
-- $2 id uuid
-- $3 name text                  NULL: keep
-- $4 panels jsonb               NULL: keep
-- $5 relink bool                false: keep the conversation; true: set it to $6
-- $6 conversation_id uuid       NULL with relink: unlink
-- $7 retask bool                false: keep the task; true: set it to $8
-- $8 task_id uuid               NULL with retask: unlink
WITH link AS (
    SELECT NOT $5::bool
           OR $6::uuid IS NULL
           OR EXISTS (SELECT 1
                        FROM conversation_members AS mm
                       WHERE mm.conversation_id = $6::uuid
                         AND mm.user_id = $1
                         AND mnemo_may(mm.role, 'read')) AS linked,
           NOT $7::bool
           OR $8::uuid IS NULL
           OR EXISTS (SELECT 1
                        FROM tasks AS t
                       WHERE t.id = $8::uuid
                         AND t.user_id = $1) AS task_linked
), changed AS (
    UPDATE workspace_snapshots AS s
       SET name = coalesce($3::text, s.name),
           panels = coalesce($4::jsonb, s.panels),
           conversation_id = CASE WHEN $5::bool THEN $6::uuid ELSE s.conversation_id END,
           task_id = CASE WHEN $7::bool THEN $8::uuid ELSE s.task_id END,
           updated_at = now()
      FROM link AS l
     WHERE s.id = $2
       AND s.user_id = $1
       AND l.linked
       AND l.task_linked
    RETURNING s.id, s.name, s.origin, s.conversation_id, s.task_id,
              jsonb_array_length(s.panels) AS panel_count, s.created_at, s.updated_at, s.panels,
              s.query_text
)
SELECT c.id, c.name, c.origin, c.conversation_id, c.task_id, c.panel_count, c.created_at,
       c.updated_at, c.panels, c.query_text, l.linked, l.task_linked
  FROM link AS l
  LEFT JOIN changed AS c ON true;

-- name: delete_snapshot
-- Delete one of the caller's snapshots. No row: missing or another user's.
-- returns: columns id
-- uses: workspace_snapshots_pkey
-- $1 user_id uuid
-- $2 id uuid
DELETE FROM workspace_snapshots
 WHERE id = $2
   AND user_id = $1
RETURNING id;

-- name: list_snapshots
-- A page of the caller's snapshots, newest first: the keyset is an index condition of
-- workspace_snapshots_user_created_idx, which also gives the order.
-- returns: SnapshotSummary
-- uses: workspace_snapshots_user_created_idx
-- $1 user_id uuid
-- $2 after_created_at timestamptz
-- $3 after_id uuid
-- $4 page_size int8             rows wanted + 1
SELECT s.id, s.name, s.origin, s.conversation_id, s.task_id,
       jsonb_array_length(s.panels) AS panel_count, s.created_at, s.updated_at
  FROM workspace_snapshots AS s
 WHERE s.user_id = $1
   AND (s.created_at, s.id) < ($2::timestamptz, $3::uuid)
 ORDER BY s.created_at DESC, s.id DESC
 LIMIT $4;

-- name: list_snapshots_matching
-- A page of the caller's snapshots whose name or query text holds $2, newest first. Both ways
-- read one user's rows only: for a pattern few snapshots hold, a custom plan finds the matches
-- in workspace_snapshots_search_idx (user_id and the pattern's trigrams) and sorts them; for a
-- common one (or a pattern under three characters, which has no trigram), it walks
-- workspace_snapshots_user_created_idx newest first and stops at the page. A generic plan,
-- which cannot know the pattern, walks the user's index (at worst all of the user's
-- snapshots, nobody else's).
-- returns: SnapshotSummary
-- uses: workspace_snapshots_search_idx, workspace_snapshots_user_created_idx
-- $1 user_id uuid
-- $2 q text
-- $3 after_created_at timestamptz
-- $4 after_id uuid
-- $5 page_size int8             rows wanted + 1
SELECT s.id, s.name, s.origin, s.conversation_id, s.task_id,
       jsonb_array_length(s.panels) AS panel_count, s.created_at, s.updated_at
  FROM workspace_snapshots AS s
 WHERE s.user_id = $1
   AND (s.name ILIKE '%' || replace(replace(replace($2::text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
        OR s.query_text ILIKE '%' || replace(replace(replace($2::text, '\', '\\'), '%', '\%'), '_', '\_') || '%')
   AND (s.created_at, s.id) < ($3::timestamptz, $4::uuid)
 ORDER BY s.created_at DESC, s.id DESC
 LIMIT $5;

-- name: list_snapshots_of_conversation
-- A page of the caller's snapshots linked to conversation $2, newest first, those whose name
-- or query text holds $3 when given: read from workspace_snapshots_conversation_idx (a
-- conversation's snapshots are few; the user and the pattern filter them), or, for a rare
-- pattern, from workspace_snapshots_search_idx.
-- returns: SnapshotSummary
-- uses: workspace_snapshots_conversation_idx, workspace_snapshots_search_idx
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 q text                     NULL: any
-- $4 after_created_at timestamptz
-- $5 after_id uuid
-- $6 page_size int8             rows wanted + 1
SELECT s.id, s.name, s.origin, s.conversation_id, s.task_id,
       jsonb_array_length(s.panels) AS panel_count, s.created_at, s.updated_at
  FROM workspace_snapshots AS s
 WHERE s.conversation_id = $2
   AND s.user_id = $1
   AND ($3::text IS NULL
        OR s.name ILIKE '%' || replace(replace(replace($3::text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
        OR s.query_text ILIKE '%' || replace(replace(replace($3::text, '\', '\\'), '%', '\%'), '_', '\_') || '%')
   AND (s.created_at, s.id) < ($4::timestamptz, $5::uuid)
 ORDER BY s.created_at DESC, s.id DESC
 LIMIT $6;

-- name: list_snapshots_of_task
-- A page of the caller's snapshots linked to task $2, newest first, those also linked to
-- conversation $3 and whose name or query text holds $4, when given: read from
-- workspace_snapshots_task_idx (a task's snapshots are few; the user, the conversation and
-- the pattern filter them), or, for a rare pattern, from workspace_snapshots_search_idx;
-- of a conversation too, from either link's index.
-- returns: SnapshotSummary
-- uses: workspace_snapshots_task_idx, workspace_snapshots_search_idx
-- uses: workspace_snapshots_conversation_idx
-- $1 user_id uuid
-- $2 task_id uuid
-- $3 conversation_id uuid       NULL: any
-- $4 q text                     NULL: any
-- $5 after_created_at timestamptz
-- $6 after_id uuid
-- $7 page_size int8             rows wanted + 1
SELECT s.id, s.name, s.origin, s.conversation_id, s.task_id,
       jsonb_array_length(s.panels) AS panel_count, s.created_at, s.updated_at
  FROM workspace_snapshots AS s
 WHERE s.task_id = $2
   AND s.user_id = $1
   AND ($3::uuid IS NULL OR s.conversation_id = $3::uuid)
   AND ($4::text IS NULL
        OR s.name ILIKE '%' || replace(replace(replace($4::text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
        OR s.query_text ILIKE '%' || replace(replace(replace($4::text, '\', '\\'), '%', '\%'), '_', '\_') || '%')
   AND (s.created_at, s.id) < ($5::timestamptz, $6::uuid)
 ORDER BY s.created_at DESC, s.id DESC
 LIMIT $7;

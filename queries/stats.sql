-- Storage you can see (README "Storage stats"): rows and bytes per table, the biggest users
-- and threads, the oldest data. Read-only; the use case (dal/usecases/stats.py) runs them in
-- one read-only transaction under a statement_timeout of their own (APP_STATS_TIMEOUT), and
-- every list is bounded by its LIMIT. Some scan a whole table (checkpoints, messages): they
-- are for an operator's look, not for a hot path.

-- name: update_stats_timeout
-- The statement_timeout of the rest of this transaction, in milliseconds.
-- returns: value
-- $1 milliseconds text
SELECT set_config('statement_timeout', $1, true);

-- name: list_stats_tables
-- Every table of the schema (yoyo's own included: it is storage too), biggest first: its
-- rows, and its bytes: the table itself (main fork, free-space and visibility maps), its
-- TOAST (out-of-line values: large jsonb and bytea) with the TOAST index, its indexes, and
-- the total. Rows are counted exactly (count(*)) when the planner's estimate
-- (pg_class.reltuples, kept by ANALYZE and autovacuum) is under $1, else the estimate is
-- given (rows_exact false); a table never analyzed is counted (mnemo_count_rows, migration
-- 20261207_11).
-- returns: columns table_name, rows, rows_exact, table_bytes, toast_bytes, index_bytes, total_bytes
-- $1 exact_below int8           count exactly below this estimate
-- $2 limit int8
SELECT s.table_name,
       CASE WHEN s.exact THEN mnemo_count_rows(s.oid) ELSE s.estimate::int8 END AS rows,
       s.exact AS rows_exact,
       s.table_bytes - s.toast_bytes AS table_bytes,
       s.toast_bytes,
       s.index_bytes,
       s.total_bytes
  FROM (SELECT c.oid, c.relname AS table_name,
               c.reltuples AS estimate,
               c.reltuples < 0 OR c.reltuples < $1::int8 AS exact,
               pg_table_size(c.oid) AS table_bytes,
               coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast_bytes,
               pg_indexes_size(c.oid) AS index_bytes,
               pg_total_relation_size(c.oid) AS total_bytes
          FROM pg_class AS c
          JOIN pg_namespace AS n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema()
           AND c.relkind IN ('r', 'p')
         ORDER BY pg_total_relation_size(c.oid) DESC, c.relname
         LIMIT $2) AS s
 ORDER BY s.total_bytes DESC, s.table_name;

-- name: list_stats_users
-- The $1 users holding the most: conversations they own and the messages in them (the
-- conversations' own counters), their checkpoints (counted), and their files' bytes
-- (attachment_usage, kept as they upload); biggest first by messages plus checkpoints.
-- Reads all of conversations and checkpoints (the checkpoints by their primary key's owner
-- column).
-- returns: columns user_id, username, conversations, messages, checkpoints, attachment_bytes
-- $1 limit int8
WITH owned AS (
    SELECT c.user_id, count(*) AS conversations, sum(c.message_count) AS messages
      FROM conversations AS c
     GROUP BY c.user_id
), saved AS (
    SELECT k.owner AS user_id, count(*) AS checkpoints
      FROM checkpoints AS k
     GROUP BY k.owner
)
SELECT u.id AS user_id, u.username,
       coalesce(o.conversations, 0)::int8 AS conversations,
       coalesce(o.messages, 0)::int8 AS messages,
       coalesce(s.checkpoints, 0)::int8 AS checkpoints,
       coalesce(a.bytes, 0)::int8 AS attachment_bytes
  FROM users AS u
  LEFT JOIN owned AS o ON o.user_id = u.id
  LEFT JOIN saved AS s ON s.user_id = u.id
  LEFT JOIN attachment_usage AS a ON a.user_id = u.id
 ORDER BY coalesce(o.messages, 0) + coalesce(s.checkpoints, 0) DESC,
          coalesce(a.bytes, 0) DESC, u.username
 LIMIT $1;

-- name: list_stats_threads
-- The $1 threads with the most checkpoints (every namespace), with their owner and the
-- oldest and newest checkpoint's time. Reads all of checkpoints.
-- returns: columns thread_id, user_id, checkpoints, oldest_at, newest_at
-- $1 limit int8
SELECT k.thread_id, k.owner AS user_id, count(*)::int8 AS checkpoints,
       min(k.created_at) AS oldest_at, max(k.created_at) AS newest_at
  FROM checkpoints AS k
 GROUP BY k.thread_id, k.owner
 ORDER BY count(*) DESC, k.thread_id, k.owner
 LIMIT $1;

-- name: get_stats_oldest
-- The oldest data: the oldest checkpoint, message and conversation (created), and the
-- conversation and thread idle the longest (their newest activity, updated_at). NULLs when
-- the tables are empty. Reads all of each table.
-- returns: columns oldest_checkpoint_at, oldest_message_at, oldest_conversation_at, stalest_conversation_at, stalest_thread_at
SELECT (SELECT min(k.created_at) FROM checkpoints AS k) AS oldest_checkpoint_at,
       (SELECT min(m.created_at) FROM messages AS m) AS oldest_message_at,
       (SELECT min(c.created_at) FROM conversations AS c) AS oldest_conversation_at,
       (SELECT min(c.updated_at) FROM conversations AS c) AS stalest_conversation_at,
       (SELECT min(t.updated_at) FROM threads AS t) AS stalest_thread_at;

-- Health and schema state.

-- name: get_server_state
-- Whether the database answers, and whether yoyo's bookkeeping table exists yet.
-- returns: columns migrations_table, server_version
SELECT to_regclass('_yoyo_migration') IS NOT NULL AS migrations_table,
       current_setting('server_version_num')::int4 AS server_version;

-- name: count_tables
-- The tables the database holds outside PostgreSQL's own schemas, yoyo's bookkeeping aside:
-- Mnemo's (a backup before migrating, or a restore, is about them).
-- returns: value
SELECT count(*)::int4
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%'
   AND c.relname NOT LIKE '\_yoyo\_%'
   AND c.relname <> 'yoyo_lock';

-- name: list_applied_migrations
-- The ids of the yoyo migrations applied to this database.
-- returns: columns migration_id
SELECT migration_id
  FROM _yoyo_migration
 ORDER BY migration_id;

-- name: get_alive
-- Whether the server answers on this connection (a listener proving its connection alive).
-- returns: value
SELECT true;

-- name: count_auth_listeners
-- The app processes listening for changes to authentication on this database (their listener
-- connections, by the application_name app/token_cache.py gives them).
-- returns: value
SELECT count(*)::int4
  FROM pg_stat_activity
 WHERE application_name = 'mnemo-auth-listener'
   AND datname = current_database();

-- name: notify_auth_sync
-- A marker on mnemo_auth after a change to authentication (app/token_cache.py): PostgreSQL
-- delivers notifications in commit order, so a listener that applied it applied the change.
-- The key is "sync:<unique id>"; each listener says it applied it as it does for a change.
-- returns: value
-- $1 key text
SELECT pg_notify('mnemo_auth', $1);

-- name: notify_auth_applied
-- Tell every app process that this one applied a notification of mnemo_auth: the key is
-- "<pid of its sender>:<its payload>" (app/token_cache.py).
-- returns: value
-- $1 key text
SELECT pg_notify('mnemo_auth_applied', $1);

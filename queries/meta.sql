-- Health and schema state.

-- name: get_server_state
-- Whether the database answers, and whether yoyo's bookkeeping table exists yet.
-- returns: columns migrations_table, server_version
SELECT to_regclass('_yoyo_migration') IS NOT NULL AS migrations_table,
       current_setting('server_version_num')::int4 AS server_version;

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

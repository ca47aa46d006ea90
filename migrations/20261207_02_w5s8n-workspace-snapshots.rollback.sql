-- Inverse of 20261207_02_w5s8n-workspace-snapshots.
DROP TABLE workspace_snapshots;
DROP FUNCTION mnemo_snapshot_queries(jsonb);
-- Created by the migration if it was missing; a pg_trgm another schema object relies on stays
-- (RESTRICT refuses to drop it, and the rollback stops there, saying so).
DROP EXTENSION IF EXISTS pg_trgm;

-- Back to no retention indexes nor override rule.
DROP FUNCTION mnemo_retention_days(integer, jsonb, text, jsonb, text);
DROP INDEX conversations_updated_idx;
DROP INDEX threads_updated_idx;

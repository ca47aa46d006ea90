-- Cached authentication hears every change that can stop a token from authenticating:
-- app/token_cache.py keeps token -> user for a few seconds in each app process and drops an
-- entry when a NOTIFY on channel mnemo_auth names its token or its user. Triggers send them, so
-- that a change made anywhere (a route, a gateway called from Python, the CLI, psql) reaches
-- every process at its commit (a rolled-back change notifies nothing). Payloads:
--   user:<users.id>   the user changed (deactivated, renamed) or was deleted, or one of their
--                     tokens was (revoked, re-dated, deleted): their entries are dropped
--   all               a table truncated
-- Inserts notify nothing: a new token or user is in no cache.
-- depends: 20261202_07_d9w2e-drop-threads-conversation-id

CREATE FUNCTION mnemo_notify_auth() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('mnemo_auth', 'all');
    ELSIF TG_TABLE_NAME = 'api_tokens' THEN
        PERFORM pg_notify('mnemo_auth', 'user:' || OLD.user_id::text);
    ELSE
        PERFORM pg_notify('mnemo_auth', 'user:' || OLD.id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER api_tokens_notify_auth
    AFTER UPDATE OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION mnemo_notify_auth();

CREATE TRIGGER users_notify_auth
    AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION mnemo_notify_auth();

CREATE TRIGGER api_tokens_notify_auth_truncate
    AFTER TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION mnemo_notify_auth();

CREATE TRIGGER users_notify_auth_truncate
    AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION mnemo_notify_auth();

-- Cached resolution hears every change to a profile: dal/usecases/profiles.py (Resolver) keeps
-- what a kind resolves to for a few seconds in each process and drops it when a NOTIFY on
-- channel mnemo_profiles names the scope it depends on. A trigger sends it, so that a change
-- made anywhere (a route, a gateway called from Python, the CLI, psql) reaches every process
-- at its commit (a rolled-back change notifies nothing). Payloads:
--   <profiles.scope>  a profile of that scope was inserted, updated or deleted: the nil UUID
--                     is the system's scope, on which every user's resolution depends
--   all               the table was truncated
-- PostgreSQL folds identical notifications of one transaction into one.
-- depends: 20261207_07_p3f8k-profiles

CREATE FUNCTION mnemo_notify_profiles() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('mnemo_profiles', 'all');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('mnemo_profiles', OLD.scope::text);
    ELSE
        PERFORM pg_notify('mnemo_profiles', NEW.scope::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER profiles_notify
    AFTER INSERT OR UPDATE OR DELETE ON profiles
    FOR EACH ROW EXECUTE FUNCTION mnemo_notify_profiles();

CREATE TRIGGER profiles_notify_truncate
    AFTER TRUNCATE ON profiles
    FOR EACH STATEMENT EXECUTE FUNCTION mnemo_notify_profiles();

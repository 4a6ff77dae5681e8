-- The fleet dashboard (`nanotrader serve`) LISTENs on `nanotrader_runs` and is told the id of
-- each run whose data changed. Every transaction of a run's writer updates its row in `runs`
-- (its progress with each batch of bars, fills, signals and snapshots; its status at the end),
-- and a run is created by an INSERT there, so one trigger on `runs` covers them all. PostgreSQL
-- delivers a notification only when its transaction commits (durable before announced) and
-- folds identical ones within a transaction: one per transaction per run, however many rows.
CREATE FUNCTION nanotrader_notify_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nanotrader_runs', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER runs_notify AFTER INSERT OR UPDATE ON runs
    FOR EACH ROW EXECUTE FUNCTION nanotrader_notify_run();

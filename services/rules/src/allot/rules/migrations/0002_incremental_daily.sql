-- Daily buckets are now maintained incrementally: the metric projection adds (new − old) of every kept
-- interval report to its bucket in the same statement, reading the replaced row through
-- INSERT ... ON CONFLICT ... RETURNING old.* — PostgreSQL 18 or newer.
DO $$
BEGIN
    IF current_setting('server_version_num')::int < 180000 THEN
        RAISE EXCEPTION 'the rules service needs PostgreSQL 18 or newer (found %)', current_setting('server_version');
    END IF;
END $$;

-- Only the old bucket rebuild read intervals by day.
DROP INDEX IF EXISTS metric_intervals_day;

-- Every report rewrites its entity's row; leave room on each page so those updates stay HOT (no index
-- column changes), which keeps them off the indexes.
ALTER TABLE entities SET (fillfactor = 60);

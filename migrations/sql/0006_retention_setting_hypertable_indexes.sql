-- The raw-readings retention becomes a setting that policies follow, and hypertables lose the
-- index TimescaleDB adds by default.

-- How long raw readings are kept: one row, changed with `motus db retention DAYS`. Both paths
-- read it when they run: the plain path's partition dropping at every housekeeping, TimescaleDB's
-- retention policies through motus_apply_retention() (migration 0005 had frozen 395 days into
-- the function, and so into the policies).
CREATE TABLE raw_retention (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    keep      interval NOT NULL CHECK (keep >= INTERVAL '1 day'),
    set_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO raw_retention (keep) VALUES (INTERVAL '395 days');

CREATE OR REPLACE FUNCTION motus_raw_retention() RETURNS interval
LANGUAGE sql STABLE AS $$ SELECT keep FROM raw_retention $$;

-- TimescaleDB: make each reading table's retention policy drop after motus_raw_retention();
-- returns how many policies it changed (0 on the plain path, or when they already agree).
CREATE FUNCTION motus_apply_retention() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    job      record;
    changed  integer := 0;
BEGIN
    IF NOT motus_timescaledb() THEN
        RETURN 0;
    END IF;
    FOR job IN
        EXECUTE 'SELECT job_id, hypertable_name, config FROM timescaledb_information.jobs'
                ' WHERE proc_name = ''policy_retention'''
                ' AND hypertable_name IN (''signals_numeric'', ''signals_text'', ''signals_location'')'
    LOOP
        IF (job.config ->> 'drop_after')::interval IS DISTINCT FROM motus_raw_retention() THEN
            PERFORM alter_job(job.job_id, config => jsonb_set(
                job.config, '{drop_after}', to_jsonb(motus_raw_retention()::text)));
            changed := changed + 1;
        END IF;
    END LOOP;
    RETURN changed;
END
$$;

-- TimescaleDB's create_hypertable adds an index on (ts DESC) unless told not to; every read goes
-- by vehicle and signal (the index of migration 0003), and chunks are found by time anyway, so
-- it only costs every write.
DO $$
BEGIN
    IF motus_timescaledb() THEN
        DROP INDEX IF EXISTS signals_numeric_ts_idx, signals_text_ts_idx, signals_location_ts_idx;
    END IF;
END
$$;

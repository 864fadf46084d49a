-- Hourly rollups, compression and retention, and the proof of movement.

-- How long raw readings are kept (hourly rollups and proofs are kept for good). One value for
-- both paths: TimescaleDB's retention policy and the plain path's partition dropping.
CREATE FUNCTION motus_raw_retention() RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT INTERVAL '395 days' $$;

-- Hourly rollups of numeric readings per vehicle and signal. A plain table on both paths, so the
-- same queries read it; motus_refresh_rollups() recomputes the hours ingest has written to.
CREATE TABLE signals_hourly (
    vehicle_id  uuid NOT NULL,
    name        text NOT NULL,
    hour        timestamptz NOT NULL,
    samples     bigint NOT NULL,
    sum         double precision NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    first_ts    timestamptz NOT NULL,
    last_ts     timestamptz NOT NULL,
    PRIMARY KEY (vehicle_id, name, hour)
);
CREATE INDEX signals_hourly_hour ON signals_hourly (hour);

-- Hours that received numeric readings since their rollup was computed. Append-only: each batch
-- adds its hours in its own transaction, so a refresh that does not see a batch's row leaves it
-- for the next refresh (no row is ever updated, no batch ever waits for another).
CREATE TABLE rollup_invalidations (
    id    bigserial PRIMARY KEY,
    hour  timestamptz NOT NULL
);

-- Recompute every invalidated hour that ended before up_to; returns the hours recomputed.
CREATE FUNCTION motus_refresh_rollups(up_to timestamptz DEFAULT now())
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    hours timestamptz[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('motus_refresh_rollups'));
    WITH taken AS (
        DELETE FROM rollup_invalidations WHERE hour + INTERVAL '1 hour' <= up_to RETURNING hour
    )
    SELECT coalesce(array_agg(DISTINCT hour), '{}') INTO hours FROM taken;
    IF cardinality(hours) = 0 THEN
        RETURN 0;
    END IF;
    DELETE FROM signals_hourly WHERE hour = ANY (hours);
    INSERT INTO signals_hourly (vehicle_id, name, hour, samples, sum, min, max, first_ts, last_ts)
    SELECT n.vehicle_id, n.name, h.hour, count(*), sum(n.value), min(n.value), max(n.value),
           min(n.ts), max(n.ts)
    FROM unnest(hours) AS h (hour)
    JOIN signals_numeric n ON n.ts >= h.hour AND n.ts < h.hour + INTERVAL '1 hour'
    GROUP BY n.vehicle_id, n.name, h.hour;
    RETURN cardinality(hours);
END
$$;

-- Plain PostgreSQL: drop daily partitions older than the retention. TimescaleDB: its policy does.
CREATE FUNCTION motus_drop_expired_partitions(keep interval DEFAULT motus_raw_retention())
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    part     record;
    dropped  integer := 0;
    cutoff   date := ((now() - keep) AT TIME ZONE 'UTC')::date;
BEGIN
    IF motus_timescaledb() THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('motus_ensure_daily_partitions'));
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname IN ('signals_numeric', 'signals_text', 'signals_location')
          AND c.relname ~ '_\d{8}$'
          AND to_date(right(c.relname, 8), 'YYYYMMDD') < cutoff
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;

-- TimescaleDB: compress chunks older than two days, segmented by vehicle so one vehicle's
-- series decompresses alone, and drop chunks past the retention.
DO $$
DECLARE
    hypertable text;
BEGIN
    IF NOT motus_timescaledb() THEN
        RETURN;
    END IF;
    FOREACH hypertable IN ARRAY ARRAY['signals_numeric', 'signals_text', 'signals_location'] LOOP
        EXECUTE format('ALTER TABLE %I SET (timescaledb.compress, '
                       'timescaledb.compress_segmentby = ''vehicle_id'', '
                       'timescaledb.compress_orderby = ''name, ts DESC'')', hypertable);
        PERFORM add_compression_policy(hypertable::regclass, INTERVAL '2 days');
        PERFORM add_retention_policy(hypertable::regclass, motus_raw_retention());
    END LOOP;
END
$$;

-- Proof of movement (ingest/movement.py, docs/movement.md): one verdict per vehicle and UTC day.
CREATE TABLE movement_proofs (
    vehicle_id         uuid NOT NULL REFERENCES vehicles (id),
    day                date NOT NULL,
    verdict            text NOT NULL CHECK (verdict IN ('moved', 'still', 'insufficient', 'refused')),
    distance_km        double precision,
    gps_km             double precision,
    odometer_km        double precision,
    speed_km           double precision,
    odometer_first_km  double precision,
    odometer_last_km   double precision,
    fixes_used         integer NOT NULL,
    fixes_dropped      integer NOT NULL,
    checks             jsonb NOT NULL,
    reasons            text[] NOT NULL,
    proved_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vehicle_id, day)
);
CREATE INDEX movement_proofs_day_verdict ON movement_proofs (day, verdict);

-- Sampled window hashes of each vehicle-day's trace: a hash shared between vehicles on one day
-- is a farm, with an earlier day a replay.
CREATE TABLE movement_fingerprints (
    vehicle_id  uuid NOT NULL REFERENCES vehicles (id),
    day         date NOT NULL,
    hash        bigint NOT NULL,
    PRIMARY KEY (vehicle_id, day, hash)
);
CREATE INDEX movement_fingerprints_hash ON movement_fingerprints (hash, day);

-- Telemetry storage. With TimescaleDB: hypertables with 1-day chunks. Without: native range
-- partitions by day, made ahead of time and on demand by motus_ensure_daily_partitions().
-- The same queries serve both.

-- Exact dedup: (device, boot id, seq) identifies an event forever. Ingest inserts the ids of
-- a batch and its readings in one transaction, keeping only readings of ids that were new.
CREATE TABLE telemetry_events (
    device_id     text NOT NULL REFERENCES devices (id),
    boot_id       text NOT NULL,
    seq           bigint NOT NULL CHECK (seq >= 0),
    event_time    timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    signal_count  integer NOT NULL,
    PRIMARY KEY (device_id, boot_id, seq)
);

CREATE FUNCTION motus_timescaledb() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
$$;

-- Creates one reading table: a hypertable, or a table partitioned by range of ts.
CREATE FUNCTION motus_create_reading_table(table_name text, value_columns text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'CREATE TABLE %I (
             ts          timestamptz NOT NULL,
             vehicle_id  uuid NOT NULL,
             device_id   text NOT NULL,
             name        text NOT NULL,
             %s
         ) %s',
        table_name, value_columns,
        CASE WHEN motus_timescaledb() THEN '' ELSE 'PARTITION BY RANGE (ts)' END);
    IF motus_timescaledb() THEN
        EXECUTE format(
            'SELECT create_hypertable(%L, %L, chunk_time_interval => INTERVAL ''1 day'')',
            table_name, 'ts');
    END IF;
    -- Per vehicle and signal in time order: the shape of every API read.
    EXECUTE format('CREATE INDEX %I ON %I (vehicle_id, name, ts DESC)',
                   table_name || '_vehicle_name_ts', table_name);
END
$$;

SELECT motus_create_reading_table('signals_numeric', 'value double precision NOT NULL');
SELECT motus_create_reading_table('signals_text', 'value text NOT NULL');
SELECT motus_create_reading_table('signals_location',
    'latitude double precision NOT NULL, longitude double precision NOT NULL, hdop real');

-- Plain PostgreSQL only: the daily partitions [first_day, last_day] of every reading table.
-- Idempotent and safe under concurrent callers. A no-op under TimescaleDB (chunks are automatic).
CREATE FUNCTION motus_ensure_daily_partitions(first_day date, last_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    parent   text;
    day      date;
    part     text;
    created  integer := 0;
BEGIN
    IF motus_timescaledb() THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('motus_ensure_daily_partitions'));
    FOREACH parent IN ARRAY ARRAY['signals_numeric', 'signals_text', 'signals_location'] LOOP
        FOR day IN SELECT generate_series(first_day, last_day, INTERVAL '1 day')::date LOOP
            part := parent || '_' || to_char(day, 'YYYYMMDD');
            IF to_regclass(part) IS NULL THEN
                EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                               part, parent,
                               day::timestamp AT TIME ZONE 'UTC',
                               (day + 1)::timestamp AT TIME ZONE 'UTC');
                created := created + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END
$$;

SELECT motus_ensure_daily_partitions(
    (now() AT TIME ZONE 'UTC')::date - 7, (now() AT TIME ZONE 'UTC')::date + 7);

-- The newest value of every signal of every vehicle, as its JSON wire value.
CREATE TABLE signals_latest (
    vehicle_id  uuid NOT NULL,
    name        text NOT NULL,
    ts          timestamptz NOT NULL,
    value       jsonb NOT NULL,
    device_id   text NOT NULL,
    PRIMARY KEY (vehicle_id, name)
);

-- Events that failed a check, kept whole with the reason, never stored as data.
CREATE TABLE quarantine (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    device_id    text,
    event_id     text,
    reason       text NOT NULL,
    detail       text NOT NULL,
    payload      bytea NOT NULL
);
CREATE INDEX quarantine_reason_received ON quarantine (reason, received_at);
CREATE INDEX quarantine_device_received ON quarantine (device_id, received_at);

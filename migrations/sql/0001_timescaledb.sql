-- Load TimescaleDB when the server offers it and preloads it; plain PostgreSQL otherwise.
-- Every later migration asks pg_extension which path it is on.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries') LIKE '%timescaledb%' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    END IF;
END
$$;

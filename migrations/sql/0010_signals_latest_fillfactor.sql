-- signals_latest takes an update of each vehicle's signals in every ingest batch. Room on each
-- page lets PostgreSQL make them heap-only-tuple updates (no new index entry while the key is
-- unchanged: README "Heap-Only Tuples" of src/backend/access/heap), so the table and its index
-- stay small between vacuums. The table holds one row per vehicle and signal: rewrite it now.
ALTER TABLE signals_latest SET (fillfactor = 50);
ALTER TABLE signals_latest SET (autovacuum_vacuum_scale_factor = 0.05);
CLUSTER signals_latest USING signals_latest_pkey;

"""Prometheus metrics of the ingest."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECEIVED = Counter("motus_ingest_received_events", "MQTT messages received")
STORED = Counter("motus_ingest_stored_events", "Events committed to the database")
READINGS = Counter("motus_ingest_stored_readings", "Signal readings committed")
DUPLICATES = Counter("motus_ingest_duplicate_events", "Events already stored (redeliveries)")
QUARANTINED = Counter(
    "motus_ingest_quarantined_events", "Events rejected into quarantine", ["reason"]
)
BATCH_EVENTS = Histogram(
    "motus_ingest_batch_events", "Events per committed batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
BATCH_SECONDS = Histogram("motus_ingest_batch_seconds", "Time to verify and commit one batch")

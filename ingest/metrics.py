"""Prometheus metrics of the ingest.

With ``motus ingest run --workers N`` each worker process writes its samples to a shared
directory (prometheus_client's multiprocess mode) and the supervisor serves their sum; gauges
say how they combine across processes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

RECEIVED = Counter("motus_ingest_received_events", "MQTT messages received")
STORED = Counter("motus_ingest_stored_events", "Events committed to the database")
READINGS = Counter("motus_ingest_stored_readings", "Signal readings committed")
DUPLICATES = Counter("motus_ingest_duplicate_events",
                     "Copies of events already stored (broker redeliveries and device re-sends)")
RESENT = Counter("motus_ingest_resent_events",
                 "Of the duplicates, copies a device sent again after a missing receipt")
RECEIPTS = Counter("motus_ingest_receipts", "Receipts published to devices after a commit")
QUARANTINED = Counter(
    "motus_ingest_quarantined_events", "Events rejected into quarantine", ["reason"]
)
QUARANTINED_READINGS = Counter(
    "motus_ingest_quarantined_readings", "Readings refused on their own (their event stored)", ["reason"]
)
BATCH_EVENTS = Histogram(
    "motus_ingest_batch_events", "Events per committed batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
BATCH_SECONDS = Histogram("motus_ingest_batch_seconds", "Time to verify and commit one batch")
#: Consumer lag: from the event's own time (the device clock) to its commit.
COMMIT_LAG_SECONDS = Histogram(
    "motus_ingest_commit_lag_seconds", "Event time to commit, per stored event",
    buckets=(0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.5, 2, 3, 5, 10, 30, 60,
             300, 3600, 86400),
)
LAST_BATCH_LAG_SECONDS = Gauge(
    "motus_ingest_last_batch_lag_seconds", "Oldest event of the last committed batch, age at commit",
    multiprocess_mode="livemax",
)
INBOX = Gauge(
    "motus_ingest_inbox_messages", "Messages received from the broker, not yet in a committed batch",
    multiprocess_mode="livesum",
)
#: 1 per worker while it holds its subscription (ingest.ops serves readiness from it).
READY_WORKERS = Gauge(
    "motus_ingest_ready_workers", "Workers subscribed to the broker and consuming",
    multiprocess_mode="livesum",
)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for each of ``values``, with one update per bucket touched rather
    than one per value (each is a write to the multiprocess file). prometheus_client has no such
    call; this does what its ``Histogram.observe`` does, on the same members."""
    if not values:
        return
    bounds = histogram._upper_bounds  # ascending, the last +Inf
    histogram._sum.inc(sum(values))
    for bucket, count in Tally(bisect_left(bounds, value) for value in values).items():
        histogram._buckets[bucket].inc(count)

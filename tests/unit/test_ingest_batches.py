"""How the ingest worker cuts what arrives from the broker into batches."""

from connections.mqtt_bulk import Publish
from ingest.consumer import Arrival, IngestWorker
from ingest.settings import IngestSettings


def _worker(now: list[float], batch_events: int) -> IngestWorker:
    settings = IngestSettings(ingest_batch_seconds=1.0, ingest_batch_events=batch_events)
    return IngestWorker(settings, monotonic=lambda: now[0])


def _arrival(at: float, mids: range) -> Arrival:
    return Arrival(at, [Publish(f"t/{mid}", b"{}", mid, 1, False) for mid in mids])


def test_reads_are_cut_at_the_batch_size_in_order_and_the_rest_waits():
    now = [100.0]
    worker = _worker(now, batch_events=3)
    worker._inbox.put(_arrival(99.0, range(1, 3)))
    worker._inbox.put(_arrival(99.5, range(3, 8)))
    assert [m.mid for m in worker._next_batch()] == [1, 2, 3]
    assert [m.mid for m in worker._next_batch()] == [4, 5, 6]
    assert [m.mid for m in worker._next_batch()] == [7]  # its read arrived 1.0 s ago: due
    assert worker._waiting_count == 0


def test_all_that_arrived_while_the_last_batch_was_written_goes_in_the_next_one():
    now = [100.9]
    worker = _worker(now, batch_events=10)
    worker._inbox.put(_arrival(99.8, range(1, 3)))  # due at 100.8: past due, yet not cut short
    worker._inbox.put(_arrival(100.0, range(3, 5)))
    assert [m.mid for m in worker._next_batch()] == [1, 2, 3, 4]


def test_nothing_arrived_is_an_empty_batch():
    worker = _worker([0.0], batch_events=10)
    worker.settings = worker.settings.model_copy(update={"ingest_batch_seconds": 0.01})
    assert worker._next_batch() == []

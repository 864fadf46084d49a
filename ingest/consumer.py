"""The ingest worker: MQTT v5 shared subscription -> batches -> one transaction -> receipts
and PUBACK.

A message is acknowledged (MQTT 5 section 4.3.2, PUBACK) only after the transaction holding it
has committed, so a crash before the commit makes the broker redeliver it to the persistent
session; the dedup makes the redelivery harmless. After the commit each device is also told
what of its events is now settled (protocol.receipts): the end-to-end acknowledgement its spool
waits for, so what a broker loses on the way (a restart, no ingest subscribed yet) is sent again.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from connections.errors import ConnectionsError
from connections.mqtt import PersistentSession, connect, disconnect, make_bulk_client
from connections.mqtt_bulk import BulkClient, Publish
from ingest import metrics
from ingest.errors import IngestError
from ingest.pipeline import Accepted, Rejected, StoreReason, process_message
from ingest.receipting import batch_receipts
from ingest.settings import IngestSettings
from ingest.store import BatchResult, TelemetryStore, housekeeping
from protocol.catalog import load_catalog
from protocol.topics import ALL_TELEMETRY, Channel, device_topic
from registry.directory import DeviceDirectory

log = logging.getLogger("motus.ingest")

SESSION_EXPIRY_S = 7 * 24 * 3600
RECEIVE_MAXIMUM = 65535  # MQTT 5 section 3.1.2.11.3: the most unacked QoS 1 messages in flight


@dataclass(frozen=True, slots=True)
class Arrival:
    """The messages of one read from the broker, and the worker's monotonic clock then: a
    batch closes batch_seconds after its oldest message arrived."""

    at: float
    messages: list[Publish]


@dataclass(slots=True)
class IngestTotals:
    received: int = 0
    stored: int = 0
    readings: int = 0
    duplicates: int = 0
    resent: int = 0
    receipts: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    #: Readings refused on their own, by reason (their events are stored).
    readings_refused: Counter[str] = field(default_factory=Counter)

    def add(self, result: BatchResult, rejected: list[Rejected], received: int) -> None:
        self.received += received
        self.stored += result.events_stored
        self.readings += result.readings_stored
        self.duplicates += result.duplicates
        self.resent += result.resent
        self.quarantined.update(str(r.reason) for r in rejected)
        self.readings_refused.update(result.readings_refused or {})


def settle_heap() -> None:
    """Call once a worker process has started, before it ingests: what start-up made (modules,
    the catalog, the decoder, about 60,000 objects) is moved out of the cycle collector's sight
    (``gc.freeze``). Each event allocates a few dozen objects that live until its batch commits,
    so the collector runs often, and every full pass walked all of start-up's objects again:
    about a tenth of a worker's CPU. Frozen objects are still freed when their last reference
    goes; only a cycle among them would outlive its use, and start-up's live as long as the
    process."""
    gc.collect()
    gc.freeze()


class IngestWorker:
    """One ingest process: consume, verify, write, acknowledge."""

    def __init__(
        self,
        settings: IngestSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        #: Wall clock (event-time checks, commit lag) and monotonic clock (batching, housekeeping).
        self.clock = clock
        self.monotonic = monotonic
        self.totals = IngestTotals()
        self._inbox: queue.Queue[Arrival] = queue.Queue()
        #: Arrived, not yet in a batch (the worker thread's own).
        self._waiting: deque[Arrival] = deque()
        self._waiting_count = 0
        self._catalog = load_catalog()
        self._client = self._make_client()

    def _make_client(self) -> BulkClient:
        client = make_bulk_client(self.settings.mqtt_endpoint(), self.settings.ingest_client_id,
                                  self._on_publishes)
        client.on_disconnect = self._on_disconnect
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        return client

    # paho callbacks (network thread)
    def _on_publishes(self, messages: list[Publish]) -> None:
        """All that one read from the broker held: one queue item, one metrics update."""
        self._inbox.put(Arrival(self.monotonic(), messages))
        metrics.INBOX.inc(len(messages))
        metrics.RECEIVED.inc(len(messages))

    @staticmethod
    def _on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        metrics.READY_WORKERS.set(0)
        log.warning("lost the broker (%s); reconnecting", reason)

    # lifecycle
    def connect(self, timeout_s: float = 30.0) -> None:
        """Connect with the persistent session and subscribe to the group; IngestError if the
        broker is unreachable or refuses."""
        topic = f"$share/{self.settings.ingest_group}/{ALL_TELEMETRY}"
        try:
            connect(self._client, self.settings.mqtt_endpoint(), subscriptions=[(topic, 1)],
                    session=PersistentSession(SESSION_EXPIRY_S, RECEIVE_MAXIMUM), timeout_s=timeout_s,
                    on_subscribed=lambda: metrics.READY_WORKERS.set(1))
        except ConnectionsError as exc:
            raise IngestError(str(exc)) from exc

    def close(self) -> None:
        metrics.READY_WORKERS.set(0)
        disconnect(self._client)

    def run(self, stop: threading.Event, idle_exit_s: float | None = None) -> IngestTotals:
        """Ingest until ``stop`` is set (or nothing arrived for ``idle_exit_s``)."""
        store = TelemetryStore(self.settings.database_url)
        directory = DeviceDirectory(psycopg.connect(self.settings.database_url), monotonic=self.monotonic)
        next_housekeeping = self.monotonic()
        try:
            last_message = self.monotonic()
            while not stop.is_set():
                if self.monotonic() >= next_housekeeping:
                    self._housekeeping(store)
                    next_housekeeping = self.monotonic() + self.settings.ingest_housekeeping_seconds
                batch = self._next_batch()
                if not batch:
                    if idle_exit_s is not None and self.monotonic() - last_message > idle_exit_s:
                        break
                    continue
                last_message = self.monotonic()
                self._handle(batch, store, directory)
        finally:
            store.close()  # the connections they hold now, also after a reconnect
            directory.conn.close()
        return self.totals

    def _housekeeping(self, store: TelemetryStore) -> None:
        try:
            done = housekeeping(store.conn, self.clock().date())
        except psycopg.Error as exc:  # the write path waits for the database; this can wait too
            log.warning("housekeeping skipped: %s", exc)
            return
        if done is not None and any(astuple(done)):
            log.info("housekeeping: %d partitions created, %d hours rolled up, %d partitions dropped, "
                     "%d retention policies changed", *astuple(done))

    def _next_batch(self) -> list[Publish]:
        """Up to batch_events messages, closing batch_seconds after the oldest one arrived (not
        after we started waiting: what queued up while the last batch was written goes now)."""
        wanted, pause = self.settings.ingest_batch_events, self.settings.ingest_batch_seconds
        if not self._waiting and not self._wait_for_arrival(pause):
            return []
        deadline = self._waiting[0].at + pause
        while self._waiting_count < wanted and self._wait_for_arrival(deadline - self.monotonic()):
            pass
        batch: list[Publish] = []
        while self._waiting and len(batch) < wanted:
            oldest = self._waiting[0]
            room = wanted - len(batch)
            batch += oldest.messages[:room]
            if len(oldest.messages) > room:
                self._waiting[0] = Arrival(oldest.at, oldest.messages[room:])
            else:
                self._waiting.popleft()
        self._waiting_count -= len(batch)
        return batch

    def _wait_for_arrival(self, timeout_s: float) -> bool:
        """Take what arrived, waiting up to ``timeout_s`` for something if nothing has."""
        try:
            arrival = self._inbox.get_nowait() if timeout_s <= 0 else self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            return False
        self._waiting.append(arrival)
        self._waiting_count += len(arrival.messages)
        return True

    def _handle(self, batch: list[Publish], store: TelemetryStore,
                directory: DeviceDirectory) -> None:
        started = time.perf_counter()
        accepted, rejected = self._verify_until_possible(batch, directory)
        result = self._write_until_committed(store, accepted, rejected)
        committed_at = self.clock()
        refused_by_database = {(r.device_id, r.event_id) for r in result.store_rejects}
        stored = [a for a in accepted if (a.source, a.event_id) not in refused_by_database]
        rejected.extend(result.store_rejects)
        self._send_receipts(stored, rejected)
        self._client.ack_many((message.mid, message.qos) for message in batch)
        metrics.INBOX.dec(len(batch))
        self._observe_lag(accepted, committed_at)
        self.totals.add(result, rejected, len(batch))
        metrics.STORED.inc(result.events_stored)
        metrics.READINGS.inc(result.readings_stored)
        metrics.DUPLICATES.inc(result.duplicates)
        metrics.RESENT.inc(result.resent)
        for reject in rejected:
            metrics.QUARANTINED.labels(reason=str(reject.reason)).inc()
        for reason, n in (result.readings_refused or {}).items():
            metrics.QUARANTINED_READINGS.labels(reason=reason).inc(n)
        metrics.BATCH_EVENTS.observe(len(batch))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        for reject in rejected:
            log.warning("quarantined %s from %s: %s", reject.reason, reject.device_id, reject.detail)
        if result.readings_refused:
            log.warning("quarantined readings of stored events: %s", ", ".join(
                f"{n} {reason}" for reason, n in sorted(result.readings_refused.items())))

    def _send_receipts(self, stored: list[Accepted], refused: list[Rejected]) -> None:
        """QoS 1 to each device's own receipts topic; one lost on the way (the device offline)
        costs only a re-send, which the dedup stores once and answers again."""
        receipts = batch_receipts(stored, refused)
        self._client.publish_many((device_topic(device_id, Channel.RECEIPTS), payload)
                                  for device_id, payload in receipts.items())
        self.totals.receipts += len(receipts)
        metrics.RECEIPTS.inc(len(receipts))

    @staticmethod
    def _observe_lag(accepted: list[Accepted], committed_at: datetime) -> None:
        if not accepted:
            return
        lags = [max(0.0, (committed_at - a.time).total_seconds()) for a in accepted]
        metrics.observe_many(metrics.COMMIT_LAG_SECONDS, lags)
        metrics.LAST_BATCH_LAG_SECONDS.set(max(lags))

    def _verify(self, batch: list[Publish],
                directory: DeviceDirectory) -> tuple[list[Accepted], list[Rejected]]:
        directory.refresh_revocations()
        now = self.clock()
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        for message in batch:
            outcome = process_message(
                message.topic, message.payload, directory.lookup, self._catalog, now,
                redelivered=message.dup,
            )
            (accepted if isinstance(outcome, Accepted) else rejected).append(outcome)  # type: ignore[arg-type]
        return accepted, rejected

    def _verify_until_possible(self, batch: list[Publish],
                               directory: DeviceDirectory) -> tuple[list[Accepted], list[Rejected]]:
        """Device lookups need the database too: wait for it rather than crash or guess."""
        delay = 0.5
        while True:
            try:
                return self._verify(batch, directory)
            except psycopg.OperationalError as exc:
                log.warning("device registry unavailable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                with contextlib.suppress(psycopg.OperationalError):
                    directory.conn.close()
                    directory.conn = psycopg.connect(self.settings.database_url)

    def _write_until_committed(self, store: TelemetryStore, accepted: list[Accepted],
                               rejected: list[Rejected]) -> BatchResult:
        """Retry while the database is unreachable instead of dropping or acking the batch."""
        delay = 0.5
        while True:
            try:
                return _write_isolating(store, accepted, rejected)
            except psycopg.OperationalError as exc:
                log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                try:
                    store.reconnect()
                except psycopg.OperationalError:
                    continue


def _write_isolating(store: TelemetryStore, accepted: list[Accepted],
                     rejected: list[Rejected]) -> BatchResult:
    """Write the batch; if the database refuses it, find and quarantine the events it refuses.

    A refused event (say its device was deleted between lookup and write) must not block the
    batch forever: redelivery would fail the same way.
    """
    try:
        return store.write(accepted, rejected)
    except psycopg.OperationalError:
        raise
    except psycopg.Error as batch_error:
        log.error("batch refused by the database (%s); writing event by event", batch_error)
    stored = duplicates = readings = resent = 0
    readings_refused: Counter[str] = Counter()
    refused = list(rejected)
    for event in accepted:
        try:
            single = store.write([event], [])
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            refused.append(Rejected(
                topic=event.topic, payload=event.payload,
                reason=StoreReason.STORAGE_ERROR, detail=str(exc).strip(),
                device_id=event.source, event_id=event.event_id,
            ))
        else:
            stored += single.events_stored
            duplicates += single.duplicates
            readings += single.readings_stored
            resent += single.resent
            readings_refused.update(single.readings_refused or {})
    store.write([], refused)
    return BatchResult(stored, duplicates, readings, quarantined=len(refused), resent=resent,
                       store_rejects=tuple(refused[len(rejected):]), readings_refused=dict(readings_refused))

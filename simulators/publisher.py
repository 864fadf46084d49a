"""Simulated cars on the air: one MQTT v5 connection per car with its own credentials, QoS 1,
publishing their signed events at a steady rate or as fast as the broker takes them."""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt

from connections.errors import BrokerRefused
from connections.mqtt import connect, disconnect, make_client
from protocol.endpoint import MqttEndpoint
from protocol.envelope import split_event_id
from protocol.limits import MAX_SEQ
from protocol.receipts import BootReceipt, ReceiptError, merge_ranges, parse_receipt
from protocol.topics import Channel, device_topic
from simulators.fleet import SimCar, drive_events


def connect_device(endpoint: MqttEndpoint, client_id: str, timeout_s: float = 10.0,
                   subscriptions: Sequence[tuple[str, int]] = ()) -> mqtt.Client:
    """A connected MQTT v5 client (subscribed to ``subscriptions``); raises BrokerRefused if
    the CONNACK or a SUBACK is a refusal."""
    client = make_client(endpoint, client_id)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(100)
    connect(client, endpoint, subscriptions=subscriptions, timeout_s=timeout_s)
    return client


@dataclass
class ReceiptTally:
    """Which published events the network's receipts settled (docs/protocol.md, "Receipts")."""

    published: dict[str, set[tuple[str, int]]] = field(default_factory=dict)
    receipts: dict[str, list[BootReceipt]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sent(self, device_id: str, payload: bytes) -> None:
        parts = split_event_id(str(json.loads(payload).get("id", "")))
        if parts is not None:
            with self._lock:
                self.published.setdefault(device_id, set()).add(parts)

    def heard(self, device_id: str, payload: bytes) -> None:
        try:
            boots = parse_receipt(payload)
        except ReceiptError:
            return
        with self._lock:
            self.receipts.setdefault(device_id, []).extend(boots)

    def settled(self) -> tuple[int, int]:
        """(events a receipt settled, events published)."""
        with self._lock:
            published = {device: set(events) for device, events in self.published.items()}
            receipts = {device: list(boots) for device, boots in self.receipts.items()}
        covered: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for device, boots in receipts.items():
            for receipt in boots:
                covered.setdefault((device, receipt.boot), []).extend(receipt.settled_ranges())
        starts = {key: merge_ranges(ranges) for key, ranges in covered.items()}
        settled = 0
        for device, events in published.items():
            for boot, seq in events:
                ranges = starts.get((device, boot), [])
                at = bisect.bisect_right(ranges, (seq, MAX_SEQ)) - 1
                settled += at >= 0 and ranges[at][0] <= seq <= ranges[at][1]
        return settled, sum(len(events) for events in published.values())


@dataclass
class Publisher:
    """One MQTT v5 connection per car with its own credentials, QoS 1; ``flush`` waits for
    every PUBACK and raises if the broker refused a message (MQTT 5 reason code >= 0x80)."""

    endpoint_for: Callable[[SimCar], MqttEndpoint]
    #: Subscribe each car to its receipts and tally them (a simulated car has no spool: what
    #: no receipt settles is only reported, not sent again).
    tally: ReceiptTally | None = None
    _clients: dict[str, mqtt.Client] = field(default_factory=dict)
    _pending: list[mqtt.MQTTMessageInfo] = field(default_factory=list)
    _refused: list[str] = field(default_factory=list)

    def _client(self, car: SimCar) -> mqtt.Client:
        client = self._clients.get(car.device_id)
        if client is None:
            receipts = device_topic(car.device_id, Channel.RECEIPTS)
            client = connect_device(self.endpoint_for(car), car.device_id,
                                    subscriptions=[(receipts, 1)] if self.tally else ())
            client.on_publish = self._on_publish
            tally = self.tally
            if tally is not None:
                client.on_message = lambda _c, _u, m, d=car.device_id: tally.heard(d, bytes(m.payload))
            self._clients[car.device_id] = client
        return client

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._refused.append(str(reason))

    def publish(self, car: SimCar, topic: str, payload: bytes) -> None:
        self._pending.append(self._client(car).publish(topic, payload, qos=1))
        if self.tally is not None:
            self.tally.sent(car.device_id, payload)

    def wait_settled(self, timeout_s: float) -> tuple[int, int]:
        """Wait up to ``timeout_s`` for receipts to settle every published event; returns
        (settled, published)."""
        assert self.tally is not None, "a publisher without a receipt tally"
        deadline = time.monotonic() + timeout_s
        while True:
            settled, total = self.tally.settled()
            if settled == total or time.monotonic() >= deadline:
                return settled, total
            time.sleep(0.2)

    def flush(self, timeout_s: float = 60.0) -> None:
        for info in self._pending:
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise TimeoutError(f"message {info.mid} was not acknowledged by the broker")
        self._pending.clear()
        if self._refused:
            refused, self._refused = self._refused, []
            raise BrokerRefused(f"the broker refused {len(refused)} messages",
                                ", ".join(sorted(set(refused))))

    def close(self) -> None:
        """Flush, then disconnect every client, also when the flush raised: a client left
        running would reconnect and take its session back from the next one of that device."""
        try:
            self.flush()
        finally:
            for client in self._clients.values():
                disconnect(client)
            self._clients.clear()


@dataclass(frozen=True, slots=True)
class PacedRun:
    published: int
    seconds: float
    #: Largest lag behind the schedule: how far the publisher fell short of the rate.
    max_lag_s: float


def publish_paced(
    publisher: Publisher,
    cars: list[SimCar],
    *,
    events_per_s: float,
    seconds: float,
    start: datetime,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> PacedRun:
    """The fleet drives and publishes ``events_per_s`` signed events per second in all (cars in
    turn, one simulated second per event each) for ``seconds``; then waits for every PUBACK."""
    if events_per_s <= 0 or not cars:
        raise ValueError("a paced run needs cars and a positive rate")
    streams = [drive_events(car, start, 10**9) for car in cars]
    total = int(events_per_s * seconds)
    began = clock()
    max_lag = 0.0
    for n in range(total):
        due = began + n / events_per_s
        ahead = due - clock()
        if ahead > 0:
            sleep(ahead)
        else:
            max_lag = max(max_lag, -ahead)
        car = cars[n % len(cars)]
        topic, payload = next(streams[n % len(cars)])
        publisher.publish(car, topic, payload)
    publisher.flush()
    return PacedRun(total, clock() - began, max_lag)

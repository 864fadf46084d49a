"""A fleet of simulated cars: each with its own Ed25519 key, boot id and sequence, each
publishing signed events on its own topic over its own MQTT connection."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker_config.client import make_client
from protocol.endpoint import MqttEndpoint
from protocol.envelope import Location, build_event
from protocol.signing import device_id_for, private_key_from_seed, public_key_bytes, sign_event, wire_bytes
from protocol.topics import telemetry_topic
from simulators.vehicle import SimulatedVehicle, stop_and_go_profile

# Start points (lat, lon) of the simulated drives: a few city centres.
CITIES = ((52.5200, 13.4050), (48.1372, 11.5756), (45.4642, 9.1900), (40.4168, -3.7038),
          (37.7749, -122.4194), (35.6762, 139.6503), (-33.8688, 151.2093), (19.4326, -99.1332))


@dataclass
class SimCar:
    key: Ed25519PrivateKey
    vehicle: SimulatedVehicle
    boot_id: str
    seq: int = 0
    vin: str = ""
    #: The broker password it was given at registration.
    mqtt_password: str = ""

    @cached_property
    def public_key(self) -> bytes:
        return public_key_bytes(self.key)

    @cached_property
    def device_id(self) -> str:
        return device_id_for(self.public_key)

    @cached_property
    def topic(self) -> str:
        return telemetry_topic(self.device_id)


def _vin(rng: random.Random) -> str:
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # ISO 3779: no I, O, Q
    return "".join(rng.choice(alphabet) for _ in range(17))


def make_fleet(size: int, *, seed: int, drive_seconds: int) -> list[SimCar]:
    """``size`` cars, reproducible from ``seed`` (keys, routes, boot ids, VINs)."""
    rng = random.Random(seed)
    cars = []
    for i in range(size):
        lat, lon = CITIES[i % len(CITIES)]
        vehicle = SimulatedVehicle(
            stop_and_go_profile(rng.randrange(2**32), drive_seconds),
            start=Location(latitude=lat + rng.uniform(-0.02, 0.02),
                           longitude=lon + rng.uniform(-0.02, 0.02)),
            heading_deg=rng.choice((0.0, 90.0, 180.0, 270.0)),
            odometer_km=round(rng.uniform(5_000, 150_000), 1),
            ambient_c=round(rng.uniform(-5, 30), 1),
            seed=rng.randrange(2**32),
        )
        key = private_key_from_seed(rng.randbytes(32))
        cars.append(SimCar(key, vehicle, boot_id=f"{rng.getrandbits(48):012x}", vin=_vin(rng)))
    return cars


def encode(document: dict[str, Any]) -> bytes:
    """Wire bytes of a signed event (protocol.signing.wire_bytes)."""
    return wire_bytes(document)


def drive_events(car: SimCar, start: datetime, seconds: int) -> Iterator[tuple[str, bytes]]:
    """One signed event per simulated second, stamped ``start`` + elapsed time."""
    for second in range(seconds):
        car.vehicle.step(1.0)
        at = start + timedelta(seconds=second + 1)
        event = build_event(device_id=car.device_id, boot_id=car.boot_id, seq=car.seq, time=at,
                            signals=car.vehicle.readings(at))
        car.seq += 1
        yield car.topic, encode(sign_event(event, car.topic, car.key))


class BrokerRefused(Exception):
    """The broker refused a simulated device's connection or one of its messages."""

    def __init__(self, context: str, reason: str) -> None:
        super().__init__(f"{context}: {reason}")
        self.reason = reason


def connect_device(endpoint: MqttEndpoint, client_id: str, timeout_s: float = 10.0) -> mqtt.Client:
    """A connected MQTT v5 client; raises BrokerRefused if the CONNACK is a refusal."""
    client = make_client(endpoint, client_id)
    answered = threading.Event()
    outcome: list[str] = []

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        outcome.append("" if not getattr(reason, "is_failure", False) else str(reason))
        answered.set()

    client.on_connect = on_connect
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(100)
    client.connect(endpoint.host, endpoint.port, keepalive=30)
    client.loop_start()
    if not answered.wait(timeout_s) or outcome[0]:
        client.loop_stop()
        client.disconnect()
        raise BrokerRefused(f"{client_id} at {endpoint.describe()}",
                            outcome[0] if outcome else "no answer")
    client.on_connect = None
    return client


@dataclass
class Publisher:
    """One MQTT v5 connection per car with its own credentials, QoS 1; ``flush`` waits for
    every PUBACK and raises if the broker refused a message (MQTT 5 reason code >= 0x80)."""

    endpoint_for: Callable[[SimCar], MqttEndpoint]
    _clients: dict[str, mqtt.Client] = field(default_factory=dict)
    _pending: list[mqtt.MQTTMessageInfo] = field(default_factory=list)
    _refused: list[str] = field(default_factory=list)

    def _client(self, car: SimCar) -> mqtt.Client:
        client = self._clients.get(car.device_id)
        if client is None:
            client = connect_device(self.endpoint_for(car), car.device_id)
            client.on_publish = self._on_publish
            self._clients[car.device_id] = client
        return client

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._refused.append(str(reason))

    def publish(self, car: SimCar, topic: str, payload: bytes) -> None:
        self._pending.append(self._client(car).publish(topic, payload, qos=1))

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
                client.disconnect()
                client.loop_stop()
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

"""A fleet of simulated cars: each with its own Ed25519 key, boot id and sequence, each
publishing signed events on its own topic over its own MQTT connection."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import paho.mqtt.client as mqtt
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from protocol.envelope import Location, build_event
from protocol.signing import device_id_for, private_key_from_seed, public_key_bytes, sign_event
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
    """Wire bytes of a signed event: its RFC 8785 canonical JSON (compact and deterministic)."""
    return bytes(rfc8785.dumps(document))


def drive_events(car: SimCar, start: datetime, seconds: int) -> Iterator[tuple[str, bytes]]:
    """One signed event per simulated second, stamped ``start`` + elapsed time."""
    for second in range(seconds):
        car.vehicle.step(1.0)
        at = start + timedelta(seconds=second + 1)
        event = build_event(device_id=car.device_id, boot_id=car.boot_id, seq=car.seq, time=at,
                            signals=car.vehicle.readings(at))
        car.seq += 1
        yield car.topic, encode(sign_event(event, car.topic, car.key))


@dataclass
class Publisher:
    """One MQTT v5 connection per device, QoS 1; ``flush`` waits for every PUBACK."""

    host: str
    port: int
    _clients: dict[str, mqtt.Client] = field(default_factory=dict)
    _pending: list[mqtt.MQTTMessageInfo] = field(default_factory=list)

    def _client(self, device_id: str) -> mqtt.Client:
        client = self._clients.get(device_id)
        if client is None:
            client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                 client_id=device_id, protocol=mqtt.MQTTv5)
            client.max_queued_messages_set(0)
            client.max_inflight_messages_set(100)
            client.connect(self.host, self.port, keepalive=30)
            client.loop_start()
            self._clients[device_id] = client
        return client

    def publish(self, device_id: str, topic: str, payload: bytes) -> None:
        self._pending.append(self._client(device_id).publish(topic, payload, qos=1))

    def flush(self, timeout_s: float = 60.0) -> None:
        for info in self._pending:
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise TimeoutError(f"message {info.mid} was not acknowledged by the broker")
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        for client in self._clients.values():
            client.disconnect()
            client.loop_stop()
        self._clients.clear()

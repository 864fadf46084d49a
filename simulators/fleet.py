"""A fleet of simulated cars (values, no I/O): each with its own Ed25519 key, boot id, sequence
and VIN, driving a route and signing one event per simulated second. ``simulators.publisher``
sends them over MQTT."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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

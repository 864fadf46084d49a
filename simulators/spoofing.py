"""Spoofing scenarios: signed, well-formed telemetry that a proof of movement must refuse, and
honest drives on every standard cycle that it must accept.

Every event here passes the ingest's checks (valid signature, catalog names, ranges): what
gives a spoof away is the story the readings tell together, which is the proof of movement's
job (``movement_proofs``). Each scenario names the inconsistency it plants.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from protocol.envelope import Location, SignalReading, build_event, parse_json_object, validate_event
from protocol.signing import sign_event
from simulators.drive_cycles import CAR_CYCLES, drive_cycle
from simulators.fleet import CITIES, SimCar, encode, make_fleet
from simulators.vehicle import SimulatedVehicle, move

#: How far the simulated drivers stray from the cycle's trace: two people never drive a cycle
#: identically, so honest cars on one cycle do not share a trace.
DRIVER_NOISE_KMH = 2.0

Mutation = Callable[[int, list[SignalReading]], list[SignalReading]]


@dataclass
class Scenario:
    name: str
    #: What is wrong, in the words of the check that should catch it.
    planted: str
    cars: list[SimCar]
    #: (car, topic, wire payload) in publishing order.
    events: list[tuple[SimCar, str, bytes]] = field(default_factory=list)
    #: True for the honest controls.
    honest: bool = False


def _set(readings: list[SignalReading], name: str, value: float | Location) -> list[SignalReading]:
    return [replace_value(r, value) if r.name == name else r for r in readings]


def replace_value(reading: SignalReading, value: float | Location) -> SignalReading:
    return SignalReading(name=reading.name, timestamp=reading.timestamp, value=value)


def _value(readings: list[SignalReading], name: str) -> float | str | Location:
    return next(r.value for r in readings if r.name == name)


def trip(car: SimCar, start: datetime, seconds: int, mutate: Mutation | None = None,
         boot_id: str | None = None) -> list[tuple[SimCar, str, bytes]]:
    """One signed event per second of ``car`` driving; ``mutate`` may rewrite each second's readings."""
    out = []
    boot = boot_id or car.boot_id
    for second in range(seconds):
        car.vehicle.step(1.0)
        at = start + timedelta(seconds=second + 1)
        readings = car.vehicle.readings(at)
        if mutate is not None:
            readings = mutate(second, readings)
        event = build_event(device_id=car.device_id, boot_id=boot, seq=car.seq, time=at, signals=readings)
        car.seq += 1
        out.append((car, car.topic, encode(sign_event(event, car.topic, car.key))))
    return out


def _car(seed: int, cycle: str = "WLTC", electric: bool = False, city: int = 0) -> SimCar:
    car = make_fleet(1, seed=seed, drive_seconds=10)[0]
    lat, lon = CITIES[city % len(CITIES)]
    start = Location(latitude=lat + car.vehicle.state.latitude % 0.01, longitude=lon)
    car.vehicle = SimulatedVehicle(drive_cycle(cycle), start=start, heading_deg=90.0,
                                   odometer_km=30_000 + car.vehicle.state.odometer_km, seed=seed,
                                   electric=electric, speed_noise_kmh=DRIVER_NOISE_KMH)
    return car


def gps_teleport(start: datetime, seed: int = 1) -> Scenario:
    """Halfway through, the position jumps 600 km east for good; odometer and speed go on as before."""
    car = _car(seed)
    seconds = 600

    def jump(second: int, readings: list[SignalReading]) -> list[SignalReading]:
        if second < seconds // 2:
            return readings
        here = _value(readings, "currentLocationCoordinates")
        assert isinstance(here, Location)
        lat, lon = move(here.latitude, here.longitude, 90.0, 600_000)
        return _set(readings, "currentLocationCoordinates", Location(latitude=round(lat, 7),
                                                                     longitude=round(lon, 7), hdop=0.9))

    return Scenario("gps_teleport", "implied GPS speed far above any car's", [car],
                    trip(car, start, seconds, jump))


def replayed_trip(start: datetime, seed: int = 2) -> Scenario:
    """Yesterday's real trip sent again today: the same readings under new times and a new boot,
    signed anew by the device's own key."""
    car = _car(seed)
    yesterday = trip(car, start - timedelta(days=1), 600)
    original = [r for _, _, payload in yesterday for r in _readings(payload)]
    per_event = len(original) // 600

    def again(second: int, _readings_now: list[SignalReading]) -> list[SignalReading]:
        at = start + timedelta(seconds=second + 1)
        chunk = original[second * per_event : (second + 1) * per_event]
        return [SignalReading(name=r.name, timestamp=at, value=r.value) for r in chunk]

    today = trip(car, start, 600, again, boot_id=f"{car.boot_id}r")
    return Scenario("replayed_trip", "a trace identical to an earlier day's", [car], yesterday + today)


def cloned_device(start: datetime, seed: int = 3) -> Scenario:
    """One device key in two cars driving at the same time in two cities."""
    first = _car(seed, city=0)
    second = _car(seed + 100, city=1)
    second.key, second.vin = first.key, first.vin  # the clone: same identity, another car
    for cached in ("public_key", "device_id", "topic"):
        second.__dict__.pop(cached, None)
    assert second.device_id == first.device_id
    events = trip(first, start, 600) + trip(second, start, 600, boot_id=f"{first.boot_id}c")
    return Scenario("cloned_device", "one device in two places at once", [first], events)


def odometer_rollback(start: datetime, seed: int = 4) -> Scenario:
    """The odometer is wound back 20,000 km halfway through."""
    car = _car(seed)

    def wind_back(second: int, readings: list[SignalReading]) -> list[SignalReading]:
        if second < 300:
            return readings
        km = _value(readings, "powertrainTransmissionTravelledDistance")
        assert isinstance(km, float)
        return _set(readings, "powertrainTransmissionTravelledDistance", round(km - 20_000, 3))

    return Scenario("odometer_rollback", "odometer goes backwards", [car], trip(car, start, 600, wind_back))


def fake_speed_parked(start: datetime, seed: int = 5) -> Scenario:
    """A parked car reports highway speed: position and odometer never move."""
    car = _car(seed, cycle="CADC Motorway")
    parked = car.vehicle.state
    rng = random.Random(seed)

    def fake(second: int, readings: list[SignalReading]) -> list[SignalReading]:
        here = Location(latitude=round(parked.latitude, 7), longitude=round(parked.longitude, 7), hdop=0.9)
        readings = _set(readings, "currentLocationCoordinates", here)
        readings = _set(readings, "powertrainTransmissionTravelledDistance", round(parked.odometer_km, 3))
        return _set(readings, "speed", round(95 + rng.uniform(-5, 5), 1))

    return Scenario("fake_speed_parked", "speed while the position stands still", [car],
                    trip(car, start, 600, fake))


def emulator_farm(start: datetime, size: int = 5, seed: int = 6) -> Scenario:
    """``size`` devices replaying one emulator's trace: identical speeds and moves, each from
    its own registered device, starting in its own city."""
    cars = [_car(seed + i, city=i) for i in range(size)]
    events = []
    for car in cars:
        car.vehicle = SimulatedVehicle(drive_cycle("WLTC"), start=Location(
            latitude=car.vehicle.state.latitude, longitude=car.vehicle.state.longitude),
            heading_deg=90.0, odometer_km=50_000.0, seed=seed,
            speed_noise_kmh=DRIVER_NOISE_KMH)  # same seed: same turns, same driving
        events += trip(car, start, 600)
    return Scenario("emulator_farm", "many vehicles with identical traces", cars, events)


def honest_drives(start: datetime, seed: int = 200) -> list[Scenario]:
    """Controls: one car per standard cycle, driving it whole, petrol and electric alternating."""
    out = []
    for i, cycle in enumerate(CAR_CYCLES):
        car = _car(seed + i, cycle=cycle, electric=i % 2 == 1)
        out.append(Scenario(f"honest_{cycle.lower().replace(' ', '_')}", "nothing", [car],
                            trip(car, start, len(drive_cycle(cycle)) - 1), honest=True))
    return out


SPOOFS: dict[str, Callable[[datetime], Scenario]] = {
    "gps_teleport": gps_teleport,
    "replayed_trip": replayed_trip,
    "cloned_device": cloned_device,
    "odometer_rollback": odometer_rollback,
    "fake_speed_parked": fake_speed_parked,
    "emulator_farm": emulator_farm,
}


def _readings(payload: bytes) -> list[SignalReading]:
    return list(validate_event(parse_json_object(payload)).data.signals)

"""A pure vehicle model: a speed profile drives consistent odometer, GPS, RPM, coolant and fuel.

Nothing here reads the clock or does I/O: ``step`` advances simulated time, ``readings`` turns
the state into catalog readings stamped with the time it is given.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from protocol.envelope import Location, SignalReading

EARTH_RADIUS_M = 6_371_008.8
IDLE_RPM = 750.0
# Overall ratio (rpm per km/h) of each gear and the speed at which the driver shifts up.
GEARS = ((0, 110.0), (20, 62.0), (35, 42.0), (55, 32.0), (75, 26.0), (95, 21.5))
FUEL_L_PER_100KM = 7.0
TANK_L = 50.0
EV_KWH_PER_100KM = 16.0
BATTERY_KWH = 60.0


def stop_and_go_profile(seed: int, seconds: int) -> list[float]:
    """A synthetic urban/suburban speed trace (km/h, one value per second).

    Stops, accelerations of 0.8-1.5 m/s^2, cruises at 30-90 km/h, and braking; shaped like a
    city drive cycle but generated, not measured.
    """
    rng = random.Random(seed)
    speeds: list[float] = []
    while len(speeds) < seconds:
        speeds.extend([0.0] * rng.randint(5, 25))
        peak = rng.choice((30, 40, 50, 50, 60, 70, 90))
        accel = rng.uniform(0.8, 1.5) * 3.6  # km/h per second
        v = 0.0
        while v < peak:
            v = min(peak, v + accel)
            speeds.append(v)
        speeds.extend(peak + rng.uniform(-2, 2) for _ in range(rng.randint(20, 90)))
        decel = rng.uniform(1.0, 2.5) * 3.6
        v = speeds[-1]
        while v > 0:
            v = max(0.0, v - decel)
            speeds.append(v)
    return speeds[:seconds]


@dataclass(frozen=True, slots=True)
class VehicleState:
    elapsed_s: float
    speed_kmh: float
    odometer_km: float
    latitude: float
    longitude: float
    heading_deg: float
    rpm: float
    coolant_c: float
    fuel_pct: float
    ambient_c: float
    battery_v: float
    engine_load_pct: float
    soc_pct: float = 80.0


def engine_rpm(speed_kmh: float) -> float:
    ratio = GEARS[0][1]
    for min_speed, gear_ratio in GEARS:
        if speed_kmh >= min_speed:
            ratio = gear_ratio
    return max(IDLE_RPM, speed_kmh * ratio)


def move(lat: float, lon: float, heading_deg: float, metres: float) -> tuple[float, float]:
    """Small-step move on a sphere (local equirectangular approximation)."""
    h = math.radians(heading_deg)
    dlat = metres * math.cos(h) / EARTH_RADIUS_M
    dlon = metres * math.sin(h) / (EARTH_RADIUS_M * math.cos(math.radians(lat)))
    return lat + math.degrees(dlat), lon + math.degrees(dlon)


class SimulatedVehicle:
    """A car following ``profile`` (km/h per second) from ``start``: a combustion car, or with
    ``electric`` a battery-electric one (state of charge instead of engine speed and fuel)."""

    def __init__(
        self,
        profile: Sequence[float],
        *,
        start: Location,
        heading_deg: float,
        odometer_km: float,
        ambient_c: float = 14.0,
        seed: int = 0,
        electric: bool = False,
        speed_noise_kmh: float = 0.0,
    ) -> None:
        self.profile = profile
        self.electric = electric
        self._rng = random.Random(seed)
        # A driver follows a cycle's trace within a tolerance (UN ECE R154 allows +-2 km/h);
        # the error wanders smoothly. Zero: the profile exactly.
        self.speed_noise_kmh = speed_noise_kmh
        self._noise_rng = random.Random(seed ^ 0x5EED)
        self._speed_error = 0.0
        self.state = VehicleState(
            elapsed_s=0.0, speed_kmh=profile[0] if profile else 0.0, odometer_km=odometer_km,
            latitude=start.latitude, longitude=start.longitude, heading_deg=heading_deg,
            rpm=IDLE_RPM, coolant_c=ambient_c, fuel_pct=80.0, ambient_c=ambient_c,
            battery_v=14.1, engine_load_pct=20.0,
        )

    def _driven(self, target_kmh: float) -> float:
        if not self.speed_noise_kmh or target_kmh <= 0:
            return target_kmh
        bound = self.speed_noise_kmh
        self._speed_error = max(-bound, min(bound, self._speed_error + self._noise_rng.gauss(0, bound / 4)))
        return max(target_kmh / 2, target_kmh + self._speed_error)

    def step(self, dt_s: float = 1.0) -> VehicleState:
        s = self.state
        index = min(int(s.elapsed_s + dt_s), len(self.profile) - 1)
        speed = self._driven(self.profile[index])
        mean_speed_ms = (s.speed_kmh + speed) / 2 / 3.6
        metres = mean_speed_ms * dt_s
        heading = s.heading_deg
        if speed == 0 and s.speed_kmh > 0:  # turn at stops, like a street grid
            heading = (heading + self._rng.choice((-90.0, 0.0, 90.0))) % 360
        lat, lon = move(s.latitude, s.longitude, heading, metres)
        accel = (speed - s.speed_kmh) / 3.6 / dt_s
        self.state = replace(
            s,
            elapsed_s=s.elapsed_s + dt_s,
            speed_kmh=speed,
            odometer_km=s.odometer_km + metres / 1000,
            latitude=lat,
            longitude=lon,
            heading_deg=heading,
            rpm=engine_rpm(speed),
            coolant_c=min(90.0, s.coolant_c + 0.1 * dt_s),  # warms up over ~12 minutes
            fuel_pct=max(0.0, s.fuel_pct - metres / 1000 * FUEL_L_PER_100KM / 100 / TANK_L * 100),
            soc_pct=max(0.0, s.soc_pct - metres / 1000 * EV_KWH_PER_100KM / 100 / BATTERY_KWH * 100),
            engine_load_pct=min(100.0, max(15.0, 25 + 40 * accel + speed * 0.2)),
        )
        return self.state

    def readings(self, at: datetime) -> list[SignalReading]:
        s = self.state

        def r(name: str, value: float | Location) -> SignalReading:
            return SignalReading(name=name, timestamp=at, value=value)

        readings = [r(name, value) for name, value in self.values().items()]
        readings.append(r("currentLocationCoordinates",
                          Location(latitude=round(s.latitude, 7), longitude=round(s.longitude, 7), hdop=0.9)))
        return readings

    def obd_values(self) -> dict[str, float]:
        """``values`` plus what an engine ECU also reports over OBD-II (SAE J1979 mode 01),
        derived from the same state: intake air, throttle, air flow, manifold pressure, ..."""
        s = self.state
        values = self.values()
        if self.electric:
            return values
        load = s.engine_load_pct
        return values | {
            "obdIntakeTemp": round(s.ambient_c + 8.0, 1),
            "powertrainCombustionEngineTPS": round(min(100.0, 12.0 + load * 0.5), 1),
            "powertrainCombustionEngineMAF": round(s.rpm * load / 100 * 0.02, 2),
            "obdRunTime": float(int(s.elapsed_s)),
            "obdBarometricPressure": 101.0,
            "obdMAP": round(min(255.0, 28.0 + load * 0.7), 1),
            "obdShortTermFuelTrim1": 1.6,
            "obdLongTermFuelTrim1": -2.3,
            "obdFuelPressure": 351.0,
            "obdCommandedEGR": 10.2,
            "obdCommandedEVAP": 4.7,
            "obdWarmupsSinceDTCClear": 12.0,
        }

    def values(self) -> dict[str, float]:
        """The numeric signals of the current state, by catalog name (what ECUs would report)."""
        s = self.state
        values = {
            "speed": round(s.speed_kmh, 1),
            "powertrainTransmissionTravelledDistance": round(s.odometer_km, 3),
            "exteriorAirTemperature": s.ambient_c,
            "lowVoltageBatteryCurrentVoltage": s.battery_v,
            "isIgnitionOn": 1.0,
        }
        if self.electric:
            values["powertrainTractionBatteryStateOfChargeCurrent"] = round(s.soc_pct, 2)
        else:
            values |= {
                "powertrainCombustionEngineSpeed": round(s.rpm, 2),
                "powertrainCombustionEngineECT": round(s.coolant_c, 1),
                "powertrainFuelSystemRelativeLevel": round(s.fuel_pct, 2),
                "obdEngineLoad": round(s.engine_load_pct, 1),
            }
        return values


class LiveVehicle:
    """A simulated vehicle that keeps pace with a clock (``speedup`` simulated seconds per real
    second), for emulators that answer in real time. It drives on from wherever ``vehicle`` is:
    a vehicle already stepped some way into its profile goes on from there, not from its start."""

    def __init__(self, vehicle: SimulatedVehicle, clock: Callable[[], float], speedup: float = 1.0) -> None:
        self.vehicle = vehicle
        self._clock = clock
        self._start = clock()
        self._origin_s = vehicle.state.elapsed_s
        self.speedup = speedup
        self._lock = threading.Lock()

    def advance(self) -> VehicleState:
        with self._lock:
            target = self._origin_s + (self._clock() - self._start) * self.speedup
            while self.vehicle.state.elapsed_s + 1.0 <= target:
                self.vehicle.step(1.0)
            return self.vehicle.state

    def values(self) -> dict[str, float]:
        self.advance()
        return self.vehicle.values()

    def obd_values(self) -> dict[str, float]:
        self.advance()
        return self.vehicle.obd_values()

"""Proof of movement, the pure core: every spoof refused for what it planted, every honest
drive accepted, and the filters and tolerances doing what docs/movement.md says."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import date, timedelta

import pytest

from movement.proof import (
    LOCATION,
    ODOMETER,
    SPEED,
    Fix,
    Measures,
    Proof,
    Refusal,
    Sample,
    TraceMatch,
    VehicleDay,
    Verdict,
    judge,
    measure,
)
from movement.report import proofs_table
from protocol.envelope import Location, parse_json_object, validate_event
from simulators.drive_cycles import CAR_CYCLES
from simulators.fleet import CITIES
from simulators.spoofing import Scenario
from tests.fixtures.scenarios import START, all_scenarios
from tests.fixtures.screen import assert_readable, rendered

DAY = START.date()


def vehicle_days(scenario: Scenario) -> list[VehicleDay]:
    """The scenario's readings grouped per vehicle (one per device) and UTC day."""
    found: dict[tuple[uuid.UUID, date], tuple[list[Fix], list[Sample], list[Sample]]] = defaultdict(
        lambda: ([], [], []))
    for _car, _topic, payload in scenario.events:
        event = validate_event(parse_json_object(payload))
        vehicle = uuid.uuid5(uuid.NAMESPACE_URL, event.source)
        for r in event.data.signals:
            fixes, speeds, odometer = found[(vehicle, r.timestamp.date())]
            if r.name == LOCATION and isinstance(r.value, Location):
                fixes.append(Fix(r.timestamp, r.value.latitude, r.value.longitude, r.value.hdop))
            elif r.name == SPEED and isinstance(r.value, float | int):
                speeds.append(Sample(r.timestamp, float(r.value)))
            elif r.name == ODOMETER and isinstance(r.value, float | int):
                odometer.append(Sample(r.timestamp, float(r.value)))
    return [VehicleDay(v, d, *series) for (v, d), series in sorted(found.items(), key=lambda kv: kv[0][1])]


def prove_all(scenarios: list[Scenario]) -> dict[str, list[Proof]]:
    """Prove every vehicle-day of ``scenarios`` together, days in order, as the driver does:
    trace matches against the same day's other vehicles and every earlier day."""
    measured: list[tuple[str, Measures]] = []
    last_odometer: dict[uuid.UUID, float | None] = {}
    days = sorted(((s.name, vd) for s in scenarios for vd in vehicle_days(s)), key=lambda x: x[1].day)
    for name, vd in days:
        m = measure(vd, last_odometer.get(vd.vehicle_id))
        last_odometer[vd.vehicle_id] = m.odometer_last_km
        measured.append((name, m))
    proofs: dict[str, list[Proof]] = defaultdict(list)
    for name, m in measured:
        matches = [TraceMatch(o.vehicle_id, o.day, len(m.fingerprint & o.fingerprint))
                   for _, o in measured
                   if o.day <= m.day and (o.day < m.day or o.vehicle_id != m.vehicle_id)]
        proofs[name].append(judge(m, [t for t in matches if t.shared]))
    return proofs


@pytest.fixture(scope="module")
def everything() -> dict[str, list[Proof]]:
    return prove_all(list(all_scenarios()))


@pytest.mark.parametrize(("scenario", "reason"), [
    ("gps_teleport", Refusal.IMPOSSIBLE_JUMP),
    ("cloned_device", Refusal.TWO_PLACES_AT_ONCE),
    ("odometer_rollback", Refusal.ODOMETER_ROLLBACK),
    ("fake_speed_parked", Refusal.SPEED_WHILE_STILL),
    ("emulator_farm", Refusal.IDENTICAL_TRACE),
])
def test_each_spoof_is_refused_for_what_it_planted(everything, scenario, reason):
    proofs = everything[scenario]
    assert proofs and all(p.verdict is Verdict.REFUSED for p in proofs), [p.reasons for p in proofs]
    assert all(reason in p.reasons for p in proofs)


def test_replayed_trip_the_original_day_stands_the_replay_is_refused(everything):
    original, replay = sorted(everything["replayed_trip"], key=lambda p: p.day)
    assert original.verdict is Verdict.MOVED and original.day == DAY - timedelta(days=1)
    assert replay.verdict is Verdict.REFUSED
    assert Refusal.REPLAYED_TRACE in replay.reasons
    # the replayed odometer starts below where the real trip ended the day before
    assert Refusal.ODOMETER_ROLLBACK in replay.reasons


def test_teleport_is_only_a_jump_not_a_disagreement(everything):
    (proof,) = everything["gps_teleport"]
    assert proof.reasons == (Refusal.IMPOSSIBLE_JUMP,)
    jump = next(c for c in proof.checks if c.name == "no_impossible_jump")
    assert "km in 1 s" in jump.detail and "stayed there" in jump.detail


def test_every_honest_drive_is_accepted_with_the_distance_it_drove(everything):
    honest = [name for name in everything if name.startswith("honest_")]
    assert len(honest) == len(CAR_CYCLES)
    for name in honest:
        (proof,) = everything[name]
        failed = [c for c in proof.checks if not c.passed]
        assert proof.verdict is Verdict.MOVED, (name, proof.reasons, failed)
        m = proof.measures
        assert m.gps_km is not None and m.odometer_km is not None and m.speed_km is not None
        assert proof.distance_km == pytest.approx(m.odometer_km, rel=0.02), name
        assert all(c.passed for c in proof.checks), name


# filters and tolerances on hand-made days ---------------------------------------------------

Series = tuple[list[Fix], list[Sample], list[Sample]]


def straight_drive(seconds: int, kmh: float = 36.0, odometer: float = 1000.0) -> Series:
    """Driving north at ``kmh``: one fix, speed and odometer reading per second."""
    fixes, speeds, odo = [], [], []
    metres_per_s = kmh / 3.6
    lat, lon = CITIES[0]
    for s in range(seconds):
        at = START + timedelta(seconds=s)
        fixes.append(Fix(at, lat + s * metres_per_s / 111_195, lon, 0.9))
        speeds.append(Sample(at, kmh))
        odo.append(Sample(at, round(odometer + s * metres_per_s / 1000, 1)))
    return fixes, speeds, odo


VEHICLE = uuid.UUID(int=1)


def day_of(fixes: list[Fix], speeds: list[Sample], odo: list[Sample]) -> VehicleDay:
    return VehicleDay(VEHICLE, DAY, fixes, speeds, odo)


def test_bad_fixes_are_dropped_and_the_drive_still_stands():
    fixes, speeds, odo = straight_drive(600)
    fixes[100] = Fix(fixes[100].ts, 0.0, 0.0, 0.9)              # receiver without a fix
    fixes[200] = Fix(fixes[200].ts, fixes[200].latitude, 9.0, 12.0)  # HDOP 12, far off
    fixes[300] = Fix(fixes[300].ts, fixes[300].latitude + 0.5, fixes[300].longitude, 1.0)  # one glitch
    proof = judge(measure(day_of(fixes, speeds, odo)))
    assert proof.verdict is Verdict.MOVED, proof.reasons
    assert proof.measures.fixes_dropped == 3 and proof.measures.fixes_used == 597
    assert proof.measures.gps_km == pytest.approx(6.0, rel=0.01)
    assert "1 at 0,0, 1 with HDOP > 5, 1 unreachable glitches" in proof.checks[0].detail


def test_odometer_rounding_is_not_a_rollback_but_a_real_drop_is():
    fixes, speeds, odo = straight_drive(120)
    odo[50] = Sample(odo[50].ts, odo[49].value - 0.1)  # one step of PID A6's resolution
    assert judge(measure(day_of(fixes, speeds, odo))).verdict is Verdict.MOVED
    odo[60:] = [Sample(o.ts, o.value - 5.0) for o in odo[60:]]  # wound back for good
    proof = judge(measure(day_of(fixes, speeds, odo)))
    assert proof.reasons == (Refusal.ODOMETER_ROLLBACK,)


def test_odometer_below_an_earlier_day_is_a_rollback():
    fixes, speeds, odo = straight_drive(120, odometer=1000.0)
    assert judge(measure(day_of(fixes, speeds, odo), previous_odometer_km=999.0)).verdict is Verdict.MOVED
    proof = judge(measure(day_of(fixes, speeds, odo), previous_odometer_km=1500.0))
    assert proof.reasons == (Refusal.ODOMETER_ROLLBACK,)
    assert "below the 1500.0 km of an earlier day" in next(
        c.detail for c in proof.checks if c.name == "odometer_monotonic")


def test_distances_that_disagree_beyond_tolerance_are_refused():
    fixes, speeds, odo = straight_drive(600)
    doubled = [Sample(s.ts, s.value * 1.3) for s in speeds]  # speed reads 30 % high
    proof = judge(measure(day_of(fixes, doubled, odo)))
    assert proof.reasons == (Refusal.DISTANCES_DISAGREE,)
    within = [Sample(s.ts, s.value * 1.1) for s in speeds]  # 10 %: inside the 15 % tolerance
    assert judge(measure(day_of(fixes, within, odo))).verdict is Verdict.MOVED


def test_one_measure_is_insufficient_and_a_parked_car_is_still():
    fixes, speeds, odo = straight_drive(120)
    assert judge(measure(day_of(fixes, [], []))).verdict is Verdict.INSUFFICIENT
    parked = [Fix(f.ts, fixes[0].latitude, fixes[0].longitude, 0.9) for f in fixes]
    zero = [Sample(s.ts, 0.0) for s in speeds]
    flat = [Sample(s.ts, 1000.0) for s in odo]
    proof = judge(measure(day_of(parked, zero, flat)))
    assert proof.verdict is Verdict.STILL and proof.distance_km == 0


def test_gps_jitter_of_a_parked_car_is_not_distance():
    fixes, speeds, odo = straight_drive(3600, kmh=0.0)
    wobble = [Fix(f.ts, f.latitude + (3e-5 if i % 2 else -3e-5), f.longitude, 1.5)  # +-3 m
              for i, f in enumerate(fixes)]
    proof = judge(measure(day_of(wobble, speeds, odo)))
    assert proof.verdict is Verdict.STILL and proof.measures.gps_km is not None
    assert proof.measures.gps_km < 0.05


def test_a_tunnel_gap_is_not_a_jump():
    fixes, speeds, odo = straight_drive(600)
    gone = fixes[:200] + fixes[260:]  # a minute without fixes, the car kept going
    proof = judge(measure(day_of(gone, speeds, odo)))
    assert proof.verdict is Verdict.MOVED, proof.reasons


def test_trace_shared_with_another_vehicle_is_judged_by_share():
    fixes, speeds, odo = straight_drive(900, kmh=0.0)
    rng = random.Random(1)
    speeds = [Sample(s.ts, rng.uniform(20, 60)) for s in speeds]  # a varied trace
    m = measure(day_of(fixes, speeds, odo))
    windows = len(m.fingerprint)
    assert windows >= 10
    other = uuid.UUID(int=2)
    few = judge(m, [TraceMatch(other, DAY, windows // 4)])
    most = judge(m, [TraceMatch(other, DAY, windows)])
    earlier = judge(m, [TraceMatch(VEHICLE, DAY - timedelta(days=3), windows)])
    assert Refusal.IDENTICAL_TRACE not in few.reasons
    assert Refusal.IDENTICAL_TRACE in most.reasons
    assert Refusal.REPLAYED_TRACE in earlier.reasons and Refusal.IDENTICAL_TRACE not in earlier.reasons


def test_the_proofs_table_reads_at_80_columns(everything):
    proofs = [p for day_proofs in everything.values() for p in day_proofs]
    table = proofs_table("movement", ((p.vehicle_id, p) for p in proofs))
    text = rendered(lambda console: console.print(table))
    reasons = sorted({str(r) for p in proofs for r in p.reasons})
    assert {"impossible_jump", "odometer_rollback", "speed_while_still"} <= set(reasons)
    assert_readable(text, [str(p.vehicle_id) for p in proofs] + reasons
                    + [f"{p.distance_km:.2f} km" for p in proofs if p.distance_km is not None])

"""Proof of movement, the pure core: one vehicle's day of readings in, a verdict out.

Three independent measures of how far a vehicle went must tell one story (docs/movement.md):

* the GPS track, after dropping invalid and 0,0 fixes, fixes with poor HDOP, and glitches
  (short runs of fixes that no car could have reached);
* the odometer delta (``powertrainTransmissionTravelledDistance``, SAE J1979 PID A6);
* the integral of the reported ``speed`` over time.

On top of agreement, the core looks for what spoofers leave behind: one device in two places at
once (a cloned key), a position that jumps and stays (teleport), an odometer that goes backwards,
speed while the position stands still, and a trace shared with another vehicle the same day (an
emulator farm) or with an earlier day (a replay). Traces are compared through fingerprints
(``trace_fingerprint``); finding the matches is the driver's job, judging them is ours.

Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from statistics import median
from uuid import UUID

EARTH_RADIUS_KM = 6371.0088
LOCATION = "currentLocationCoordinates"
SPEED = "speed"
ODOMETER = "powertrainTransmissionTravelledDistance"


class Verdict(StrEnum):
    MOVED = "moved"          # the measures agree on a distance of at least min_moved_km
    STILL = "still"          # they agree the vehicle did not move
    INSUFFICIENT = "insufficient"  # fewer than two measures: nothing to cross-check
    REFUSED = "refused"      # a spoofing sign or a disagreement; see reasons


class Refusal(StrEnum):
    TWO_PLACES_AT_ONCE = "two_places_at_once"
    IMPOSSIBLE_JUMP = "impossible_jump"
    ODOMETER_ROLLBACK = "odometer_rollback"
    ODOMETER_JUMP = "odometer_jump"
    SPEED_WHILE_STILL = "speed_while_still"
    DISTANCES_DISAGREE = "distances_disagree"
    IDENTICAL_TRACE = "identical_trace"
    REPLAYED_TRACE = "replayed_trace"


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Every threshold of the proof, documented in docs/movement.md."""

    #: Fastest a road vehicle plausibly goes; faster implied GPS or odometer motion is impossible.
    max_speed_kmh: float = 250.0
    #: Fixes with a worse horizontal dilution of precision are dropped (HDOP 5: "moderate").
    max_hdop: float = 5.0
    #: GPS error allowed on top of max speed when deciding whether a fix is reachable.
    gps_slack_m: float = 50.0
    #: Moves smaller than this are GPS jitter, not travel (a parked receiver wanders metres).
    jitter_m: float = 10.0
    #: Runs of fewer fixes than this that no car could have reached are glitches, not tracks.
    min_track_fixes: int = 20
    #: Two tracks overlapping in time for longer than this: one device in two places at once.
    max_overlap_s: float = 30.0
    #: OBD odometers count in 0.1 km (SAE J1979 PID A6); smaller drops are rounding.
    odometer_resolution_km: float = 0.1
    #: Speed readings further apart than this are not integrated across (the gap is unknown).
    max_speed_gap_s: float = 30.0
    #: Two measures agree when within this fraction of the larger, or within agree_abs_km.
    agree_rel: float = 0.15
    agree_abs_km: float = 0.5
    #: Below this distance, a vehicle is still.
    min_moved_km: float = 0.5
    #: Seconds of (speed, heading) per fingerprint window, and the share of own windows found
    #: in another trace that makes the traces identical.
    trace_window_s: int = 60
    trace_sample_mod: int = 8
    min_trace_windows: int = 10
    identical_share: float = 0.5


DEFAULT_TOLERANCES = Tolerances()


@dataclass(frozen=True, slots=True)
class Fix:
    ts: datetime
    latitude: float
    longitude: float
    hdop: float | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    ts: datetime
    value: float


@dataclass(frozen=True, slots=True)
class VehicleDay:
    vehicle_id: UUID
    day: date
    fixes: Sequence[Fix]
    speeds: Sequence[Sample]
    odometer: Sequence[Sample]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class TraceMatch:
    """Another vehicle-day sharing ``shared`` fingerprint windows with the one being proved."""

    vehicle_id: UUID
    day: date
    shared: int


@dataclass(frozen=True, slots=True)
class Measures:
    """What one vehicle-day's readings say, before matching its trace against others."""

    vehicle_id: UUID
    day: date
    gps_km: float | None
    odometer_km: float | None
    speed_km: float | None
    odometer_first_km: float | None
    odometer_last_km: float | None
    fixes_used: int
    fixes_dropped: int
    fingerprint: frozenset[int]
    checks: tuple[Check, ...]
    reasons: tuple[Refusal, ...]


@dataclass(frozen=True, slots=True)
class Proof:
    vehicle_id: UUID
    day: date
    verdict: Verdict
    distance_km: float | None
    measures: Measures
    checks: tuple[Check, ...]
    reasons: tuple[Refusal, ...] = field(default=())


def haversine_km(a_lat: float, a_lon: float, b_lat: float, b_lon: float) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a_lat, a_lon, b_lat, b_lon))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _distance_km(a: Fix, b: Fix) -> float:
    return haversine_km(a.latitude, a.longitude, b.latitude, b.longitude)


def _bearing_deg(a: Fix, b: Fix) -> float:
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlon = math.radians(b.longitude - a.longitude)
    x = math.sin(dlon) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlon)
    return math.degrees(math.atan2(x, y)) % 360


# GPS ---------------------------------------------------------------------------------------

def usable_fixes(fixes: Iterable[Fix], tol: Tolerances) -> tuple[list[Fix], dict[str, int]]:
    """Drop fixes no receiver would report for a real position: out of range, exactly 0,0
    (the "null island" of receivers without a fix), or with HDOP worse than ``max_hdop``."""
    kept: list[Fix] = []
    dropped = {"invalid": 0, "null_island": 0, "poor_hdop": 0}
    for fix in sorted(fixes, key=lambda f: f.ts):
        if not (-90 <= fix.latitude <= 90 and -180 <= fix.longitude <= 180) or not (
                math.isfinite(fix.latitude) and math.isfinite(fix.longitude)):
            dropped["invalid"] += 1
        elif fix.latitude == 0 and fix.longitude == 0:
            dropped["null_island"] += 1
        elif fix.hdop is not None and fix.hdop > tol.max_hdop:
            dropped["poor_hdop"] += 1
        else:
            kept.append(fix)
    return kept, dropped


def _reachable(last: Fix, fix: Fix, tol: Tolerances) -> bool:
    seconds = (fix.ts - last.ts).total_seconds()
    return _distance_km(last, fix) * 1000 <= tol.max_speed_kmh / 3.6 * seconds + tol.gps_slack_m


def split_tracks(fixes: Sequence[Fix], tol: Tolerances) -> list[list[Fix]]:
    """Group time-ordered fixes into tracks a car could have driven: each fix joins the most
    recently extended track it is reachable from at ``max_speed_kmh``, or starts a new one."""
    tracks: list[list[Fix]] = []
    for fix in fixes:
        best: list[Fix] | None = None
        for track in tracks:
            if _reachable(track[-1], fix, tol) and (
                    best is None or (track[-1].ts, len(track)) > (best[-1].ts, len(best))):
                best = track
        if best is None:
            tracks.append([fix])
        else:
            best.append(fix)
    return tracks


def path_km(track: Sequence[Fix], tol: Tolerances) -> float:
    """Length of a track, counting a move only once it leaves ``jitter_m`` of the last anchor."""
    if not track:
        return 0.0
    total, anchor = 0.0, track[0]
    for fix in track[1:]:
        step = _distance_km(anchor, fix)
        if step * 1000 >= tol.jitter_m:
            total += step
            anchor = fix
    return total


def _gps_story(fixes: Sequence[Fix], tol: Tolerances) -> tuple[
        float | None, int, int, list[Check], list[Refusal]]:
    kept, dropped = usable_fixes(fixes, tol)
    tracks = sorted((t for t in split_tracks(kept, tol) if len(t) >= tol.min_track_fixes),
                    key=lambda t: t[0].ts)
    used = sum(len(t) for t in tracks)
    glitches = len(kept) - used
    checks = [Check("gps_fixes", True,
                    f"{used} fixes used; dropped {dropped['invalid']} invalid, "
                    f"{dropped['null_island']} at 0,0, {dropped['poor_hdop']} with HDOP > "
                    f"{tol.max_hdop:g}, {glitches} unreachable glitches")]
    reasons: list[Refusal] = []
    if not tracks:
        return None, 0, len(fixes), checks, reasons
    clash = _overlapping_tracks(tracks, tol)
    checks.append(Check("one_place_at_a_time", clash is None, clash or
                        f"{len(tracks)} track(s), none overlapping in time"))
    if clash is not None:
        reasons.append(Refusal.TWO_PLACES_AT_ONCE)
    jump = _jump_between(tracks, tol) if clash is None else None
    checks.append(Check("no_impossible_jump", jump is None, jump or "every fix reachable from the last"))
    if jump is not None:
        reasons.append(Refusal.IMPOSSIBLE_JUMP)
    return sum(path_km(t, tol) for t in tracks), used, len(fixes) - used, checks, reasons


def _overlapping_tracks(tracks: Sequence[Sequence[Fix]], tol: Tolerances) -> str | None:
    for i, a in enumerate(tracks):
        for b in tracks[i + 1:]:
            overlap = (min(a[-1].ts, b[-1].ts) - max(a[0].ts, b[0].ts)).total_seconds()
            if overlap > tol.max_overlap_s:
                end = a[-1]
                apart = _distance_km(end, min(b, key=lambda f: abs((f.ts - end.ts).total_seconds())))
                return (f"two tracks {apart:.0f} km apart overlap for {overlap:.0f} s "
                        f"({a[0].ts:%H:%M:%S}-{end.ts:%H:%M:%S} and "
                        f"{b[0].ts:%H:%M:%S}-{b[-1].ts:%H:%M:%S})")
    return None


def _jump_between(tracks: Sequence[Sequence[Fix]], tol: Tolerances) -> str | None:
    for a, b in itertools.pairwise(tracks):
        seconds = max((b[0].ts - a[-1].ts).total_seconds(), 1.0)
        km = _distance_km(a[-1], b[0])
        return (f"position jumped {km:.1f} km in {seconds:.0f} s at {b[0].ts:%H:%M:%S} "
                f"({km / seconds * 3600:.0f} km/h > {tol.max_speed_kmh:g}) and stayed there")
    return None


# odometer and speed -------------------------------------------------------------------------

def _odometer_story(samples: Sequence[Sample], previous_km: float | None, tol: Tolerances) -> tuple[
        float | None, float | None, float | None, list[Check], list[Refusal]]:
    ordered = sorted(samples, key=lambda s: s.ts)
    if not ordered:
        return None, None, None, [], []
    travelled = 0.0
    drops: list[str] = []
    jumps: list[str] = []
    allowed_drop = tol.odometer_resolution_km + 1e-6  # one count of rounding, in float arithmetic
    if previous_km is not None and ordered[0].value < previous_km - allowed_drop:
        drops.append(f"starts at {ordered[0].value:.1f} km, below the {previous_km:.1f} km of an earlier day")
    for a, b in itertools.pairwise(ordered):
        delta = b.value - a.value
        seconds = (b.ts - a.ts).total_seconds()
        if delta < -allowed_drop:
            drops.append(f"{a.value:.1f} -> {b.value:.1f} km at {b.ts:%H:%M:%S}")
        elif delta > tol.max_speed_kmh * seconds / 3600 + 2 * tol.odometer_resolution_km:
            jumps.append(f"+{delta:.1f} km in {seconds:.0f} s at {b.ts:%H:%M:%S}")
        elif delta > 0:
            travelled += delta
    checks = [
        Check("odometer_monotonic", not drops, "; ".join(drops[:3]) or "never decreases"),
        Check("odometer_rate", not jumps, "; ".join(jumps[:3]) or
              f"never faster than {tol.max_speed_kmh:g} km/h"),
    ]
    reasons = ([Refusal.ODOMETER_ROLLBACK] if drops else []) + ([Refusal.ODOMETER_JUMP] if jumps else [])
    km = travelled if len(ordered) >= 2 else None
    return km, ordered[0].value, ordered[-1].value, checks, reasons


def speed_integral_km(samples: Sequence[Sample], tol: Tolerances) -> float | None:
    """Trapezoid integral of speed (km/h) over time, not bridging gaps over ``max_speed_gap_s``."""
    ordered = sorted(samples, key=lambda s: s.ts)
    if len(ordered) < 2:
        return None
    total = 0.0
    for a, b in itertools.pairwise(ordered):
        seconds = (b.ts - a.ts).total_seconds()
        if 0 < seconds <= tol.max_speed_gap_s:
            total += (a.value + b.value) / 2 * seconds / 3600
    return total


# fingerprints -------------------------------------------------------------------------------

def trace_fingerprint(fixes: Sequence[Fix], speeds: Sequence[Sample], tol: Tolerances) -> frozenset[int]:
    """Content-sampled hashes of the trace's moving windows (as in document fingerprinting:
    a window is kept when its hash is 0 mod ``trace_sample_mod``, so identical traces keep the
    same windows wherever they start).

    A window is ``trace_window_s`` consecutive seconds that have both a speed and a fix, each
    second reduced to (speed rounded to 1 km/h, heading in eight sectors or "still"). The
    heading is what tells two honest cars that drive the same speed profile apart; what it
    leaves out (where the car is) is what lets a farm's copies in other cities match.
    """
    speed_at = {int(s.ts.timestamp()): s.value for s in speeds}
    tokens: list[tuple[int, int]] = []
    previous: Fix | None = None
    for fix in sorted(fixes, key=lambda f: f.ts):
        second = int(fix.ts.timestamp())
        if second in speed_at:
            if previous is None or _distance_km(previous, fix) * 1000 < 1.0:
                sector = 8
            else:
                sector = int(((_bearing_deg(previous, fix) + 22.5) % 360) // 45)
            tokens.append((round(speed_at[second]), sector))
        previous = fix
    width = tol.trace_window_s
    hashes: set[int] = set()
    for start in range(len(tokens) - width + 1):
        window = tokens[start:start + width]
        if sum(1 for speed, _ in window if speed > 0) < width // 2:
            continue  # standing or creeping: every parked car would look alike
        digest = hashlib.blake2b(repr(window).encode(), digest_size=8).digest()
        value: int = struct.unpack(">q", digest)[0]
        if value % tol.trace_sample_mod == 0:
            hashes.add(value)
    return frozenset(hashes)


# the proof ----------------------------------------------------------------------------------

def measure(vehicle_day: VehicleDay, previous_odometer_km: float | None = None,
            tol: Tolerances = DEFAULT_TOLERANCES) -> Measures:
    gps_km, used, dropped, checks, reasons = _gps_story(vehicle_day.fixes, tol)
    odo_km, odo_first, odo_last, odo_checks, odo_reasons = _odometer_story(
        vehicle_day.odometer, previous_odometer_km, tol)
    return Measures(
        vehicle_id=vehicle_day.vehicle_id, day=vehicle_day.day, gps_km=gps_km, odometer_km=odo_km,
        speed_km=speed_integral_km(vehicle_day.speeds, tol), odometer_first_km=odo_first,
        odometer_last_km=odo_last, fixes_used=used, fixes_dropped=dropped,
        fingerprint=trace_fingerprint(vehicle_day.fixes, vehicle_day.speeds, tol),
        checks=(*checks, *odo_checks), reasons=(*reasons, *odo_reasons),
    )


def _agree(a: float, b: float, tol: Tolerances) -> bool:
    return abs(a - b) <= max(tol.agree_abs_km, tol.agree_rel * max(a, b))


def _agreement(m: Measures, tol: Tolerances) -> tuple[list[Check], list[Refusal]]:
    named = {"gps": m.gps_km, "odometer": m.odometer_km, "speed": m.speed_km}
    present = {k: v for k, v in named.items() if v is not None}
    still = tol.min_moved_km
    if (m.speed_km is not None and m.speed_km >= still
            and all(v < still for k, v in present.items() if k != "speed") and len(present) > 1):
        detail = (f"speed integrates to {m.speed_km:.2f} km while "
                  + " and ".join(f"{k} says {v:.2f} km" for k, v in present.items() if k != "speed"))
        return [Check("speed_matches_motion", False, detail)], [Refusal.SPEED_WHILE_STILL]
    checks: list[Check] = []
    reasons: list[Refusal] = []
    names = list(present)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ok = _agree(present[a], present[b], tol)
            checks.append(Check(f"{a}_vs_{b}", ok, f"{present[a]:.2f} km vs {present[b]:.2f} km "
                                f"(tolerance {tol.agree_rel:.0%} or {tol.agree_abs_km:g} km)"))
            if not ok and Refusal.DISTANCES_DISAGREE not in reasons:
                reasons.append(Refusal.DISTANCES_DISAGREE)
    return checks, reasons


def _trace_checks(m: Measures, matches: Sequence[TraceMatch], tol: Tolerances) -> tuple[
        list[Check], list[Refusal]]:
    windows = len(m.fingerprint)
    if windows < tol.min_trace_windows:
        return [Check("unique_trace", True, f"only {windows} moving windows: too little to compare")], []
    same_day = [t for t in matches if t.day == m.day and t.vehicle_id != m.vehicle_id
                and t.shared >= tol.identical_share * windows]
    earlier = [t for t in matches if t.day < m.day and t.shared >= tol.identical_share * windows]
    checks = [
        Check("unique_trace", not same_day,
              f"{windows} windows; shared with {len(same_day)} other vehicle(s) the same day"
              + (f": {', '.join(str(t.vehicle_id) for t in same_day[:5])}" if same_day else "")),
        Check("fresh_trace", not earlier,
              f"{windows} windows; " + (
                  "repeats " + ", ".join(f"{t.vehicle_id} on {t.day}" for t in earlier[:5])
                  if earlier else "no earlier day repeats it")),
    ]
    reasons = ([Refusal.IDENTICAL_TRACE] if same_day else []) + ([Refusal.REPLAYED_TRACE] if earlier else [])
    return checks, reasons


def judge(m: Measures, matches: Sequence[TraceMatch] = (),
          tol: Tolerances = DEFAULT_TOLERANCES) -> Proof:
    agreement, disagreement = _agreement(m, tol)
    trace, copied = _trace_checks(m, matches, tol)
    checks = (*m.checks, *agreement, *trace)
    reasons = tuple(dict.fromkeys((*m.reasons, *disagreement, *copied)))
    present = sorted(v for v in (m.gps_km, m.odometer_km, m.speed_km) if v is not None)
    # With three measures the median, with two the smaller: never more than two measures say.
    distance = median(present) if len(present) == 3 else (present[0] if present else None)
    if reasons:
        verdict = Verdict.REFUSED
    elif len(present) < 2:
        verdict = Verdict.INSUFFICIENT
    elif distance is not None and distance >= tol.min_moved_km:
        verdict = Verdict.MOVED
    else:
        verdict = Verdict.STILL
    return Proof(m.vehicle_id, m.day, verdict, distance, m, checks, reasons)

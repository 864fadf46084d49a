"""The demo's proof of movement: cars that spoof join the honest fleet, then the day is proved
(`motus movement prove`) and every car's verdict shown."""

from __future__ import annotations

from collections.abc import Callable, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import psycopg
from rich.table import Table

from movement.proof import Proof, Verdict
from movement.report import proofs_table
from movement.store import days_between, prove_day
from simulators.spoofing import Scenario, fake_speed_parked, gps_teleport, odometer_rollback

#: Spoofs with one car each, so each is one vehicle of its own in the report.
DEMO_SPOOFS: tuple[Callable[..., Scenario], ...] = (gps_teleport, odometer_rollback, fake_speed_parked)
SPOOF_TRIP_S = 600
DAY = timedelta(days=1)


def scene_end(now: datetime, span: timedelta) -> datetime:
    """When the demo's simulated drives end: ``now``, unless the ``span`` before it crosses
    midnight UTC; then one second before that midnight. A day's proof of movement sees only that
    day's fixes, so a drive cut in two would be judged twice on halves (a spoof's teleport on one
    side, honest-looking fixes on the other). A span of a day or more cannot fit: ``now``."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if now - span >= midnight or span >= DAY - timedelta(seconds=1):
        return now
    return midnight - timedelta(seconds=1)


def wait_for_one_day(now: datetime, seconds: float) -> float:
    """Seconds to wait so a drive of ``seconds`` at real time, starting then, ends on the day it
    starts (0 when it already does): past the coming midnight UTC, else not at all."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + DAY
    if now + timedelta(seconds=seconds) < midnight:
        return 0.0
    return (midnight - now).total_seconds() + 1.0


def spoofing_cars(end: datetime, seed: int) -> list[Scenario]:
    """The demo's spoofs, their ten-minute trips ending a minute before ``end``; ``seed`` makes
    their devices new on every run."""
    start = end - timedelta(seconds=SPOOF_TRIP_S + 60)
    return [make(start, seed=seed + i) for i, make in enumerate(DEMO_SPOOFS)]


@dataclass(frozen=True, slots=True)
class MovementOutcome:
    proofs: dict[UUID, Proof]
    labels: dict[UUID, str]
    honest: set[UUID]
    spoofed: set[UUID]
    #: Cars known to have driven far enough to be proved moved (the agent car).
    driven: set[UUID] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        """Every spoof refused, no honest car refused, every driven car proved moved."""
        refused = {v for v, proof in self.proofs.items() if proof.verdict is Verdict.REFUSED}
        moved = {v for v, proof in self.proofs.items() if proof.verdict is Verdict.MOVED}
        return self.spoofed <= refused and not self.honest & refused and self.driven <= moved


def prove(database_url: str, first: datetime, last: datetime, labels: dict[UUID, str],
          honest: set[UUID], spoofed: set[UUID], driven: Set[UUID] = frozenset()) -> MovementOutcome:
    proofs: dict[UUID, Proof] = {}
    with psycopg.connect(database_url) as conn:
        for day in days_between(first.date(), last.date()):
            for proof in prove_day(conn, day):
                if proof.vehicle_id in labels:
                    proofs[proof.vehicle_id] = proof  # a drive over midnight: the later day
    return MovementOutcome(proofs, labels, honest, spoofed, set(driven))


def report_table(outcome: MovementOutcome) -> Table:
    rows = [(vehicle, outcome.proofs.get(vehicle)) for vehicle in outcome.labels]
    return proofs_table("proof of movement (motus movement prove)", rows, outcome.labels.__getitem__)


def labels_for(vehicles: list[UUID], spoofs: list[Scenario], spoof_vehicles: list[UUID]) -> dict[UUID, str]:
    labels = {vehicle: f"fleet car {i + 1}" for i, vehicle in enumerate(vehicles)}
    labels.update({vehicle: f"spoof: {s.name}" for s, vehicle in zip(spoofs, spoof_vehicles, strict=True)})
    return labels

"""Proofs of movement for people: a table that reads at 80 columns, and JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from uuid import UUID

from rich import box
from rich.table import Table

from movement.proof import Proof, Verdict


def proof_json(proof: Proof) -> dict[str, object]:
    m = proof.measures
    return {"vehicle_id": str(proof.vehicle_id), "day": proof.day.isoformat(),
            "verdict": str(proof.verdict), "distance_km": proof.distance_km, "gps_km": m.gps_km,
            "odometer_km": m.odometer_km, "speed_km": m.speed_km,
            "reasons": [str(r) for r in proof.reasons], "checks": [c.to_json() for c in proof.checks]}


def _km(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def proofs_table(title: str, rows: Iterable[tuple[UUID, Proof | None]],
                 label: Callable[[UUID], str] = str) -> Table:
    """One row per vehicle: who (``label``, by default the vehicle id, never cut), the verdict
    and distance, then the three measures and the reasons, which fold when space is short."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("vehicle", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("gps / odometer / speed km; reasons", overflow="fold")
    for vehicle, proof in rows:
        if proof is None:
            table.add_row(label(vehicle), "[dim]no data[/dim]", "no GPS, speed or odometer")
            continue
        m = proof.measures
        colour = "red" if proof.verdict is Verdict.REFUSED else "green"
        verdict = f"[{colour}]{proof.verdict}[/{colour}]"
        if proof.distance_km is not None:
            verdict += f" {proof.distance_km:.2f} km"
        evidence = " / ".join(_km(v) for v in (m.gps_km, m.odometer_km, m.speed_km))
        if proof.reasons:
            evidence += "; " + ", ".join(proof.reasons)
        table.add_row(label(vehicle), verdict, evidence)
    return table

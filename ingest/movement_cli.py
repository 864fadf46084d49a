"""`motus movement prove`: the proof of movement for one UTC day (or a range, in order)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from ingest.movement import Proof
from ingest.movement_store import days_between, prove_day
from ingest.settings import IngestSettings

app = typer.Typer(help="Proof of movement: which vehicles really drove.", no_args_is_help=True)


def _parse_day(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a day (YYYY-MM-DD)") from exc


@app.command()
def prove(
    day: str = typer.Option(..., help="UTC day to prove, YYYY-MM-DD."),
    until: str | None = typer.Option(None, help="Prove every day from --day to this one, in order."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per proof."),
) -> None:
    """Compute and store movement_proofs for every vehicle active that day (MOTUS_DATABASE_URL)."""
    first = _parse_day(day)
    last = _parse_day(until) if until else first
    if last < first:
        raise typer.BadParameter("--until is before --day")
    console = Console()
    try:
        with psycopg.connect(IngestSettings().database_url) as conn:
            for one_day in days_between(first, last):
                proofs = prove_day(conn, one_day)
                if as_json:
                    for proof in proofs:
                        typer.echo(json.dumps(_as_json(proof)))
                else:
                    _print_day(console, one_day, proofs)
    except psycopg.OperationalError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _as_json(proof: Proof) -> dict[str, object]:
    m = proof.measures
    return {"vehicle_id": str(proof.vehicle_id), "day": proof.day.isoformat(),
            "verdict": str(proof.verdict), "distance_km": proof.distance_km, "gps_km": m.gps_km,
            "odometer_km": m.odometer_km, "speed_km": m.speed_km,
            "reasons": [str(r) for r in proof.reasons], "checks": [c.to_json() for c in proof.checks]}


def _km(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print_day(console: Console, day: date, proofs: list[Proof]) -> None:
    table = Table(title=f"movement on {day} (UTC)")
    for column in ("vehicle", "verdict", "km", "gps", "odometer", "speed", "reasons"):
        table.add_column(column)
    for p in proofs:
        table.add_row(str(p.vehicle_id), str(p.verdict), _km(p.distance_km), _km(p.measures.gps_km),
                      _km(p.measures.odometer_km), _km(p.measures.speed_km),
                      ", ".join(p.reasons) or "")
    console.print(table)
    verdicts = Counter(str(p.verdict) for p in proofs)
    console.print(", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) or "no active vehicles")

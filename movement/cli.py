"""`motus movement prove`: the proof of movement for one UTC day (or a range, in order)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime

import typer
from rich.console import Console

from connections.database import connect
from connections.errors import ConnectionsError
from connections.settings import DatabaseSettings
from movement.proof import Proof
from movement.report import proof_json, proofs_table
from movement.store import days_between, prove_day

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
        with connect(DatabaseSettings()) as conn:
            for one_day in days_between(first, last):
                proofs = prove_day(conn, one_day)
                if as_json:
                    for proof in proofs:
                        typer.echo(json.dumps(proof_json(proof)))
                else:
                    _print_day(console, one_day, proofs)
    except ConnectionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _print_day(console: Console, day: date, proofs: list[Proof]) -> None:
    console.print(proofs_table(f"movement on {day} (UTC)", ((p.vehicle_id, p) for p in proofs)))
    verdicts = Counter(str(p.verdict) for p in proofs)
    console.print(", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) or "no active vehicles")

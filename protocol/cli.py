"""`motus signals`: the signal catalog."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from protocol.catalog import Privilege, load_catalog


def signals(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array of objects."),
    location_only: bool = typer.Option(False, "--location", help="Only location signals."),
    obd_only: bool = typer.Option(False, "--obd", help="Only signals with an OBD-II PID."),
) -> None:
    """List the signal catalog: names, units, types, ranges, privilege and OBD-II PIDs."""
    specs = [
        s for s in load_catalog()
        if (not location_only or s.privilege is Privilege.LOCATION)
        and (not obd_only or s.obd is not None)
    ]
    if as_json:
        typer.echo(json.dumps([s.to_json() for s in specs], indent=2))
        return
    table = Table(title=f"Motus signal catalog ({len(specs)} signals)")
    for column in ("name", "unit", "type", "range", "privilege", "OBD-II"):
        table.add_column(column)
    for s in specs:
        span = "" if s.min is None else f"{s.min:g} .. {s.max:g}"
        pid = f"{s.obd.mode} {s.obd.pid}: {s.obd.formula}" if s.obd else ""
        table.add_row(s.name, s.unit, s.type.value, span, s.privilege.value, pid)
    Console().print(table)

"""`motus signals`: the signal catalog."""

from __future__ import annotations

import json

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from protocol.catalog import Privilege, SignalSpec, load_catalog

#: Below this width the six columns do not fit the longest names (57 characters): one signal
#: takes two lines instead, its name whole on the first.
WIDE_TABLE_COLUMNS = 130


def _facts(s: SignalSpec) -> list[str]:
    span = "" if s.min is None else f"{s.min:g} .. {s.max:g}"
    pid = f"{s.obd.mode} {s.obd.pid}: {s.obd.formula}" if s.obd else ""
    return [s.unit, s.type.value, span, s.privilege.value, pid]


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
    console = Console()
    title = f"Motus signal catalog ({len(specs)} signals)"
    if console.width >= WIDE_TABLE_COLUMNS:
        table = Table(title=title, box=box.SIMPLE_HEAD)
        for column in ("name", "unit", "type", "range", "privilege", "OBD-II"):
            table.add_column(column, no_wrap=column == "name", overflow="fold")
        for s in specs:
            table.add_row(s.name, *_facts(s))
    else:
        table = Table(title=title, box=box.SIMPLE_HEAD)
        table.add_column("name, then unit · type · range · privilege · OBD-II", overflow="fold")
        for s in specs:
            *facts, pid = _facts(s)
            line = " · ".join(fact or "-" for fact in facts) + (f" · {pid}" if pid else "")
            table.add_row(f"[bold]{s.name}[/bold]\n  {line}")
    console.print(table)

"""`motus agent run|status`: the in-car agent."""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from device_agent.config import load_agent_file
from device_agent.errors import AgentError
from device_agent.spool import Spool
from protocol.agent_config import AgentConfigError

app = typer.Typer(help="The in-car agent: read the car, spool, publish.", no_args_is_help=True)

CONFIG = typer.Option(..., "--config", "-c", help="agent.toml (written by `motus device register`).")


def _load(config: Path):  # type: ignore[no-untyped-def]
    try:
        return load_agent_file(config)
    except AgentConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def stop_handler(stop: threading.Event) -> Callable[[int, Any], None]:
    """A SIGTERM/SIGINT handler that asks ``stop`` once. Python runs handlers on the main thread
    between bytecodes, which may be inside ``stop.set()`` itself, holding the event's lock (not
    reentrant): a second signal then calling ``set()`` again would wait on that lock forever, as
    two quick SIGTERMs (``timeout``, a double Ctrl-C) did. Later signals therefore do nothing."""
    asked = False

    def handler(_signum: int, _frame: Any) -> None:
        nonlocal asked
        if asked:
            return
        asked = True
        stop.set()

    return handler


def stop_on_signals(stop: threading.Event) -> None:
    handler = stop_handler(stop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


@app.command()
def run(config: Path = CONFIG) -> None:
    """Read the configured sources, spool every reading, publish to the broker. Stops on
    SIGTERM/SIGINT after spooling what it holds."""
    from device_agent.runner import build_agent

    settings = _load(config)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        runtime = build_agent(settings)
    except AgentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    stop_on_signals(runtime.stop)
    runtime.run()
    c = runtime.pump.counters
    typer.echo(f"polled {c.spooled_readings} readings into {c.spooled_events} events; "
               f"published {c.published_events} events, acknowledged {c.acked_events}, "
               f"refused {c.refused_events}; receipts settled {c.settled_events} "
               f"({c.refused_by_network} refused by the network), sent again {c.resent_events}")


@app.command()
def status(config: Path = CONFIG, as_json: bool = typer.Option(False, "--json")) -> None:
    """What the spool holds: events waiting, bytes, and what was dropped to respect its bound."""
    settings = _load(config)
    try:
        spool = Spool(settings.spool.path, max_bytes=int(settings.spool.max_mb * 1024 * 1024))
    except AgentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    stats = spool.stats()
    spool.close()
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(stats)))
        return
    typer.echo(f"device {settings.device.id}: {stats.events} events ({stats.readings} readings) waiting, "
               f"{stats.stored_bytes / 1e6:.1f} MB of {settings.spool.max_mb:g} MB; dropped "
               f"{stats.dropped_events} events ({stats.dropped_readings} readings)")

"""The `motus` command: mounts each package's own sub-commands."""

from __future__ import annotations

import typer

from api.cli import app as api_app
from bench.cli import app as bench_app
from broker_config.cli import app as broker_app
from device_agent.cli import app as agent_app
from ingest.cli import app as ingest_app
from ingest.movement_cli import app as movement_app
from migrations.cli import app as db_app
from motus.demo import demo
from motus.device_cli import app as device_app
from motus.stack_cli import app as stack_app
from protocol.cli import signals
from simulators.cli import app as sim_app

app = typer.Typer(
    help="Motus: a driver-owned vehicle-data network.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(signals)
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(broker_app, name="broker")
app.add_typer(device_app, name="device")
app.add_typer(agent_app, name="agent")
app.add_typer(ingest_app, name="ingest")
app.add_typer(movement_app, name="movement")
app.add_typer(api_app, name="api")
app.add_typer(sim_app, name="sim")
app.add_typer(bench_app, name="bench")
app.command()(demo)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""The `motus` command: mounts each package's own sub-commands."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import typer

from api.cli import app as api_app
from bench.cli import app as bench_app
from broker_config.cli import app as broker_app
from device_agent.cli import app as agent_app
from ingest.cli import app as ingest_app
from migrations.cli import app as db_app
from motus.demo import demo
from motus.fleet_cli import fleet
from movement.cli import app as movement_app
from protocol.cli import signals
from registry.cli import account_app, developer_app
from registry.cli import app as device_app
from rewards.cli import mount as mount_rewards
from simulators.cli import app as sim_app
from stack.cli import app as stack_app


def motus_version() -> str:
    try:
        return version("motus")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"motus {motus_version()}")
        raise typer.Exit()


app = typer.Typer(
    help="Motus: a driver-owned vehicle-data network.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main_options(
    _version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                  help="Print the version and exit."),
) -> None:
    """Motus: a driver-owned vehicle-data network."""


app.command()(signals)
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(broker_app, name="broker")
app.add_typer(device_app, name="device")
app.add_typer(developer_app, name="developer")
app.add_typer(account_app, name="account")
mount_rewards(app, developer_app)
app.add_typer(agent_app, name="agent")
app.add_typer(ingest_app, name="ingest")
app.add_typer(movement_app, name="movement")
app.add_typer(api_app, name="api")
sim_app.command()(fleet)
app.add_typer(sim_app, name="sim")
app.add_typer(bench_app, name="bench")
app.command()(demo)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

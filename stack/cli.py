"""`motus stack up|down|status|env`: the local stack of real Mosquitto and PostgreSQL."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import typer
from rich.console import Console

from migrations.runner import MigrationError, upgrade
from stack.errors import StackError
from stack.local import LocalStack

app = typer.Typer(help="Start and stop a throwaway local Mosquitto + PostgreSQL.", no_args_is_help=True)
DirOption = typer.Option(Path(".motus"), "--dir", help="Where the stack lives.")
#: Shared by `motus stack up`, `motus demo` and `motus bench ingest`.
PathOption = typer.Option(
    None, "--timescaledb/--plain",
    help="The database path of a new stack: TimescaleDB hypertables (built by scripts/timescaledb.sh) "
         "or plain PostgreSQL partitions. Default: the stack's own, plain for a new one.")
console = Console()


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


@app.command()
def up(
    directory: Path = DirOption,
    migrate: bool = typer.Option(True, help="Apply database migrations after starting."),
    timescaledb: bool | None = PathOption,
) -> None:
    """Start both servers on free ports (reuses what is already running)."""
    try:
        info = LocalStack(directory, timescaledb=timescaledb).up()
        applied = upgrade(info.database_url) if migrate else []
    except (StackError, MigrationError) as exc:
        raise _fail(exc) from exc
    path = "TimescaleDB hypertables" if info.timescaledb else "plain PostgreSQL partitions"
    console.print(f"PostgreSQL  127.0.0.1:{info.pg_port}  ({path})")
    console.print(f"Mosquitto   127.0.0.1:{info.mqtt_port} (services), :{info.mqtt_tls_port} "
                  f"(devices, TLS), :{info.mqtt_ws_port} (secure WebSocket); CA {info.ca_file}")
    if applied:
        console.print(f"migrations applied: {', '.join(m.name for m in applied)}")
    console.print(f"eval \"$(motus stack env --dir {shlex.quote(str(directory))})\" to use it")


@app.command()
def down(directory: Path = DirOption) -> None:
    """Stop both servers (the data stays in the directory)."""
    try:
        LocalStack(directory).down()
    except StackError as exc:
        raise _fail(exc) from exc
    console.print("stack stopped")


@app.command()
def status(directory: Path = DirOption,
           as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Say which servers are running; exit 1 unless both are."""
    state = LocalStack(directory).status()
    if as_json:
        typer.echo(json.dumps(state))
    else:
        for name, running in state.items():
            console.print(f"{name:10} {'running' if running else 'stopped'}")
    if not all(state.values()):
        raise typer.Exit(1)


@app.command()
def env(directory: Path = DirOption) -> None:
    """Print the connection settings as shell exports (eval them)."""
    info = LocalStack(directory).read_state()
    if info is None:
        raise _fail(StackError(f"no stack in {directory}; run `motus stack up` first"))
    for key, value in info.env().items():
        typer.echo(f"export {key}={shlex.quote(value)}")

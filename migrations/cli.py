"""`motus db upgrade|status`."""

from __future__ import annotations

import psycopg
import typer

from connections.database import unreachable
from connections.settings import DatabaseSettings
from migrations.runner import MigrationError, applied_versions, available_migrations, upgrade

app = typer.Typer(help="Database migrations.", no_args_is_help=True)


def _fail(message: object) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@app.command("upgrade")
def upgrade_command() -> None:
    """Apply every migration not yet applied (MOTUS_DATABASE_URL), in order."""
    settings = DatabaseSettings()
    try:
        applied = upgrade(settings.database_url)
    except psycopg.OperationalError as exc:
        raise _fail(unreachable(settings, exc)) from exc
    except MigrationError as exc:
        raise _fail(exc) from exc
    if applied:
        for m in applied:
            typer.echo(f"applied {m.version:04d}_{m.name}")
    else:
        typer.echo("database is up to date")


@app.command()
def status() -> None:
    """List migrations and whether each is applied."""
    settings = DatabaseSettings()
    try:
        done = dict(applied_versions(settings.database_url))
    except psycopg.OperationalError as exc:
        raise _fail(unreachable(settings, exc)) from exc
    for m in available_migrations():
        typer.echo(f"{m.version:04d}_{m.name:20} {'applied' if m.version in done else 'pending'}")


@app.command()
def retention(
    days: int | None = typer.Argument(None, min=1, help="Keep raw readings this many days (default: "
                                                          "print the current setting)."),
) -> None:
    """How long raw readings are kept (hourly rollups and proofs are kept for good). Setting it
    applies at once to TimescaleDB's retention policies; running ingest workers drop expired
    partitions at their next housekeeping."""
    settings = DatabaseSettings()
    try:
        with psycopg.connect(settings.database_url) as conn:
            if days is not None:
                conn.execute("UPDATE raw_retention SET keep = make_interval(days => %s), set_at = now()",
                             (days,))
                conn.execute("SELECT motus_apply_retention()")
            row = conn.execute("SELECT extract(day FROM motus_raw_retention())::int").fetchone()
    except psycopg.OperationalError as exc:
        raise _fail(unreachable(settings, exc)) from exc
    except psycopg.errors.UndefinedTable as exc:
        raise _fail("the database lacks migration 0006; run `motus db upgrade`") from exc
    typer.echo(f"raw readings are kept {row[0] if row else '?'} days")

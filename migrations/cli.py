"""`motus db upgrade|status`."""

from __future__ import annotations

import psycopg
import typer
from pydantic_settings import BaseSettings, SettingsConfigDict

from migrations.runner import MigrationError, applied_versions, available_migrations, upgrade

app = typer.Typer(help="Database migrations.", no_args_is_help=True)


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOTUS_")

    database_url: str = "postgresql://motus@127.0.0.1:5432/motus"


@app.command("upgrade")
def upgrade_command() -> None:
    """Apply every migration not yet applied (MOTUS_DATABASE_URL), in order."""
    try:
        applied = upgrade(DatabaseSettings().database_url)
    except (MigrationError, psycopg.OperationalError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if applied:
        for m in applied:
            typer.echo(f"applied {m.version:04d}_{m.name}")
    else:
        typer.echo("database is up to date")


@app.command()
def status() -> None:
    """List migrations and whether each is applied."""
    try:
        done = dict(applied_versions(DatabaseSettings().database_url))
    except psycopg.OperationalError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for m in available_migrations():
        typer.echo(f"{m.version:04d}_{m.name:20} {'applied' if m.version in done else 'pending'}")

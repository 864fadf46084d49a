"""Database connections whose failure says where we looked and what to run."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict

from connections.errors import DatabaseUnreachable
from connections.settings import LOCAL_STACK_HINT, DatabaseSettings


def redacted(conninfo: str) -> str:
    """Where a connection string points (user, host, port, database), never its password."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<an unreadable connection string>"
    user = f"{params['user']}@" if params.get("user") else ""
    return f"postgresql://{user}{params.get('host', 'localhost')}:{params.get('port', 5432)}/" \
        f"{params.get('dbname', '')}"


def unreachable(settings: DatabaseSettings, exc: Exception) -> DatabaseUnreachable:
    """The error to raise when ``settings.database_url`` cannot be reached."""
    cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    message = f"cannot connect to the database at {redacted(settings.database_url)}: {cause}"
    if settings.is_default("database_url"):
        message += f"\nMOTUS_DATABASE_URL is not set, so the default was tried; {LOCAL_STACK_HINT}"
    return DatabaseUnreachable(message)


Connection = psycopg.Connection[tuple[object, ...]]


def connect(settings: DatabaseSettings, *, autocommit: bool = False) -> Connection:
    """A connection to the network's database, or DatabaseUnreachable saying what to do."""
    try:
        return psycopg.connect(settings.database_url, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise unreachable(settings, exc) from exc

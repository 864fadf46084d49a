"""Developer accounts (migration 0007): the organisations that hold licences. API keys come
with the data API. Plain SQL on a connection the caller holds; the caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast
from uuid import UUID

import psycopg

from registry.errors import InvalidIdentity
from registry.identity import check_email

Connection = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class Developer:
    id: UUID
    organisation: str
    contact_email: str
    created_at: datetime


def check_organisation(text: str) -> str:
    name = " ".join(text.split())
    if not 1 <= len(name) <= 120:
        raise InvalidIdentity(f"{text!r} is not an organisation name (1 to 120 characters)")
    return name


def add_developer(conn: Connection, organisation: str, contact_email: str) -> Developer:
    """A new developer account; an organisation already registered is refused."""
    name, email = check_organisation(organisation), check_email(contact_email)
    row = conn.execute(
        "INSERT INTO developers (organisation, contact_email) VALUES (%s, %s)"
        " ON CONFLICT (organisation) DO NOTHING RETURNING id, created_at", (name, email)).fetchone()
    if row is None:
        raise InvalidIdentity(f"a developer named {name!r} is already registered")
    return Developer(cast(UUID, row[0]), name, email, cast(datetime, row[1]))


def _developer(row: tuple[object, ...] | None) -> Developer | None:
    if row is None:
        return None
    return Developer(cast(UUID, row[0]), str(row[1]), str(row[2]), cast(datetime, row[3]))


def find_developer(conn: Connection, organisation: str) -> Developer | None:
    return _developer(conn.execute(
        "SELECT id, organisation, contact_email, created_at FROM developers WHERE organisation = %s",
        (" ".join(organisation.split()),)).fetchone())


def developer_by_id(conn: Connection, developer_id: UUID) -> Developer | None:
    return _developer(conn.execute(
        "SELECT id, organisation, contact_email, created_at FROM developers WHERE id = %s",
        (developer_id,)).fetchone())


def list_developers(conn: Connection) -> list[Developer]:
    rows = conn.execute("SELECT id, organisation, contact_email, created_at FROM developers"
                        " ORDER BY organisation").fetchall()
    return [d for d in map(_developer, rows) if d is not None]

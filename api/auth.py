"""Who is calling: a developer's API key, a person's token, or a person's console session.
Every route but health and the docs requires one of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from api.problems import ApiProblem
from registry.accounts import session_account
from registry.keys import DEVELOPER_PREFIX, PERSONAL_PREFIX, checksum_ok, find_key, touch_key
from registry.store import driver_by_email

SESSION_COOKIE = "motus_session"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="motus"'}


@dataclass(frozen=True, slots=True)
class Caller:
    kind: Literal["developer", "person"]
    key_id: str | None  # None: a console session
    developer_id: UUID | None = None
    email: str | None = None
    driver_id: UUID | None = None  # the person as a driver, when they are one
    unions: frozenset[UUID] = field(default_factory=frozenset)  # the unions the person operates


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, detail, "unauthorized", _CHALLENGE)


def _person(conn: Any, email: str, key_id: str | None) -> Caller:
    unions = frozenset(r[0] for r in conn.execute(
        "SELECT id FROM unions WHERE operator_email = %s", (email,)).fetchall())
    return Caller("person", key_id, email=email, driver_id=driver_by_email(conn, email), unions=unions)


def identify(conn: Any, bearer: str | None, session: str | None, now: datetime) -> Caller:
    """The caller of a request, or a 401 problem saying what is wrong with its credentials."""
    if bearer:
        if not bearer.startswith((DEVELOPER_PREFIX, PERSONAL_PREFIX)):
            raise _unauthorized(f"an API key starts with {DEVELOPER_PREFIX} (developers) or "
                                f"{PERSONAL_PREFIX} (personal tokens)")
        if not checksum_ok(bearer):
            raise _unauthorized("this is not a Motus key: its checksum does not match (mistyped?)")
        key = find_key(conn, bearer)
        if key is None:
            raise _unauthorized("unknown API key")
        if not key.active:
            raise _unauthorized(f"API key {key.id} was revoked")
        touch_key(conn, key.id, now)
        if key.kind == "developer":
            return Caller("developer", key.id, developer_id=key.developer_id)
        assert key.account_email is not None
        return _person(conn, key.account_email, key.id)
    if session:
        email = session_account(conn, session, now)
        if email is None:
            raise _unauthorized("the session has ended: sign in again")
        return _person(conn, email, None)
    raise _unauthorized("send an API key: Authorization: Bearer motus_live_…")

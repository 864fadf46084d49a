"""Dependencies every router shares: a database connection from the app's pool, the caller,
the clock, and the settings."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Path, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import SESSION_COOKIE, Caller, identify
from api.problems import ApiProblem
from api.settings import ApiSettings
from rewards.errors import MissingNetworkKey
from rewards.service import network_key

T = TypeVar("T")

bearer = HTTPBearer(auto_error=False, scheme_name="apiKey",
                    description="A developer API key (motus_live_…) or a personal token (motus_pat_…)")
cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, scheme_name="session",
                      description="The console session of a driver or union operator")


def now() -> datetime:
    return datetime.now(UTC)


def database(request: Request) -> Iterator[Any]:
    """A connection from the app's pool; its transaction commits when the request succeeds."""
    with request.app.state.pools[-1].connection() as conn:
        yield conn


# "function" scope: the transaction commits (or fails, answered as such) before the response is
# sent, so what a request read is logged and what it changed holds for the next request.
Db = Annotated[Any, Depends(database, scope="function")]


def settings(request: Request) -> ApiSettings:
    found = request.app.state.settings
    assert isinstance(found, ApiSettings)
    return found


Settings = Annotated[ApiSettings, Depends(settings)]


def network_key_or_503(config: ApiSettings) -> Ed25519PrivateKey:
    """The network's signing key; the API never makes one (`motus rewards key` does)."""
    try:
        return network_key(config.network_key_file, create=False)
    except MissingNetworkKey as exc:
        raise ApiProblem(503, str(exc), "unavailable") from exc


def caller(conn: Db, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
           session: Annotated[str | None, Depends(cookie)]) -> Caller:
    found = identify(conn, credentials.credentials if credentials else None, session, now())
    conn.commit()  # the key's last use, whatever the request does next
    return found


Who = Annotated[Caller, Depends(caller)]
VehicleId = Annotated[UUID, Path(description="The vehicle's id")]


def person(who: Who) -> Caller:
    if who.kind != "person":
        raise ApiProblem(403, "this route is for drivers and union operators, not developers' API keys",
                         "forbidden")
    return who


Person = Annotated[Caller, Depends(person)]


def driver(who: Person) -> Caller:
    if who.driver_id is None:
        raise ApiProblem(403, "this route is for drivers: no vehicle is registered to "
                              f"{who.email}", "forbidden")
    return who


Driver = Annotated[Caller, Depends(driver)]


def aware(text: str) -> datetime:
    """A timestamp with its zone (a cursor this API issued), else ValueError."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("a timestamp without a zone")
    return value


def positive_id(text: str) -> int:
    value = int(text)
    if not 0 < value < 2**63:
        raise ValueError("out of range")
    return value


def encode_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, parse: Callable[[str], T]) -> T | None:
    if cursor is None:
        return None
    try:
        return parse(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiProblem(400, "the cursor is not one this API gave out", "invalid-cursor") from None

"""A driver's and a union operator's own routes: sign-in and tokens, the access log, the knob,
memberships, earnings and payout proofs, exporting and deleting their data."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from api import queries
from api.auth import SESSION_COOKIE
from api.deps import (
    Db,
    Driver,
    Person,
    Settings,
    VehicleId,
    decode_cursor,
    encode_cursor,
    network_key_or_503,
    now,
    positive_id,
)
from api.problems import ApiProblem, responses
from api.schemas import (
    AccessEntry,
    AccessLog,
    IssuedToken,
    KnobChoice,
    KnobState,
    MembershipChange,
    MembershipState,
    PauseChange,
    SignIn,
    Statement,
    StatementEntry,
    TokenRequest,
)
from protocol.signing import public_key_bytes
from registry.accounts import check_password, close_session, open_session
from registry.keys import create_personal_token
from rewards import service as rewards_service
from rewards import store as rewards_store
from rewards.coverage import knob_at
from rewards.errors import RewardsError, UnknownRecord
from rewards.knob import SENTENCES, Knob
from rewards.ledger import driver_account
from rewards.weeks import Week

router = APIRouter()


# -- sign-in and tokens ------------------------------------------------------------------------

@router.post("/v1/auth/session", status_code=204, tags=["sign-in"], responses=responses(400, 401),
             summary="Sign in with e-mail and password: sets an httpOnly session cookie")
def sign_in(body: SignIn, request: Request, response: Response, conn: Db) -> None:
    if not check_password(conn, body.email.strip(), body.password):
        raise ApiProblem(401, "wrong e-mail or password", "unauthorized")
    token = open_session(conn, body.email.strip(), now())
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=12 * 3600, path="/")


@router.delete("/v1/auth/session", status_code=204, tags=["sign-in"], responses=responses(401, 403),
               summary="Sign out")
def sign_out(_me: Person, request: Request, response: Response, conn: Db) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        close_session(conn, token, now())
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.post("/v1/me/tokens", response_model=IssuedToken, status_code=201, tags=["sign-in"],
             responses=responses(400, 401, 403), summary="Mint a personal API token (shown once)")
def mint_token(body: TokenRequest, me: Person, conn: Db) -> IssuedToken:
    assert me.email is not None
    key, secret = create_personal_token(conn, me.email, body.label, now())
    return IssuedToken(id=key.id, token=secret)


# -- who read my data --------------------------------------------------------------------------

@router.get("/v1/me/access-log", response_model=AccessLog, tags=["me"], responses=responses(400, 401, 403),
            summary="Who read your vehicles' data: every read that returned data, newest first")
def my_access_log(me: Driver, conn: Db, cursor: Annotated[str | None, Query()] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AccessLog:
    assert me.driver_id is not None
    rows = queries.access_log(conn, me.driver_id, decode_cursor(cursor, positive_id), limit + 1)
    entries = [AccessEntry(id=r[0], at=r[1], developer=r[2], developer_id=r[3], api_key_id=r[4],
                           licence_id=r[5], purpose=r[6], vehicle_id=r[7], signals=list(r[8]),
                           range_from=r[9], range_to=r[10], rows=r[11]) for r in rows[:limit]]
    more = len(rows) > limit
    return AccessLog(entries=entries, next_cursor=encode_cursor(str(entries[-1].id)) if more else None)


# -- the knob and memberships ------------------------------------------------------------------

def _knob_state(conn: Any, driver_id: UUID) -> KnobState:
    at = now()
    level = knob_at(rewards_store.knob_histories(conn, at, [driver_id]).get(driver_id, []), at)
    return KnobState(level=level.label, means=SENTENCES[level],
                     levels={k.label: SENTENCES[k] for k in Knob})


@router.get("/v1/me/knob", response_model=KnobState, tags=["me"], responses=responses(401, 403),
            summary="Your one knob: what licences may read of your cars")
def my_knob(me: Driver, conn: Db) -> KnobState:
    assert me.driver_id is not None
    return _knob_state(conn, me.driver_id)


@router.put("/v1/me/knob", response_model=KnobState, tags=["me"], responses=responses(400, 401, 403),
            summary="Turn the knob: applies to every licence from the next request")
def set_my_knob(body: KnobChoice, me: Driver, conn: Db) -> KnobState:
    assert me.driver_id is not None
    rewards_store.set_knob(conn, me.driver_id, Knob.parse(body.level), now())
    return _knob_state(conn, me.driver_id)


def _own(conn: Any, me: Any, vehicle_id: UUID) -> None:
    if me.driver_id is None or queries.owner_of(conn, vehicle_id) != me.driver_id:
        raise ApiProblem(404, f"no vehicle {vehicle_id} of yours", "not-found")


def _membership(conn: Any, vehicle_id: UUID) -> MembershipState:
    current = rewards_store.open_membership(conn, vehicle_id)
    if current is None:
        return MembershipState(vehicle_id=vehicle_id, union=None, admitted=False, paused=False)
    union = rewards_store.union_by_id(conn, current.union_id)
    return MembershipState(vehicle_id=vehicle_id, union=union.slug, admitted=current.joined_at is not None,
                           paused=current.paused_at is not None)


def _refused(exc: RewardsError) -> ApiProblem:
    return ApiProblem(404 if isinstance(exc, UnknownRecord) else 409, str(exc),
                      "not-found" if isinstance(exc, UnknownRecord) else "conflict")


@router.get("/v1/me/vehicles/{vehicle_id}/membership", response_model=MembershipState, tags=["me"],
            responses=responses(400, 401, 403, 404), summary="The union your vehicle belongs to")
def my_membership(vehicle_id: VehicleId, me: Driver, conn: Db) -> MembershipState:
    _own(conn, me, vehicle_id)
    return _membership(conn, vehicle_id)


@router.put("/v1/me/vehicles/{vehicle_id}/membership", response_model=MembershipState, tags=["me"],
            responses=responses(400, 401, 403, 404, 409),
            summary="Join a union with your vehicle (admitted at once where admission is open)")
def join_union(vehicle_id: VehicleId, body: MembershipChange, me: Driver, conn: Db) -> MembershipState:
    _own(conn, me, vehicle_id)
    at = now()
    try:
        union = rewards_store.union_by_slug(conn, body.union)
        in_force = rewards_store.bylaws_in_force(conn, union.id, at.date())
        admitted = in_force is not None and in_force[1].admission.value == "open"
        rewards_store.join(conn, vehicle_id, union.id, at, admitted=admitted)
    except RewardsError as exc:
        raise _refused(exc) from exc
    return _membership(conn, vehicle_id)


@router.delete("/v1/me/vehicles/{vehicle_id}/membership", response_model=MembershipState, tags=["me"],
               responses=responses(400, 401, 403, 404, 409),
               summary="Leave the union: no licence reads the vehicle from the next request")
def leave_union(vehicle_id: VehicleId, me: Driver, conn: Db) -> MembershipState:
    _own(conn, me, vehicle_id)
    try:
        rewards_store.leave(conn, vehicle_id, now())
    except RewardsError as exc:
        raise _refused(exc) from exc
    return _membership(conn, vehicle_id)


@router.put("/v1/me/vehicles/{vehicle_id}/membership/paused", response_model=MembershipState, tags=["me"],
            responses=responses(400, 401, 403, 404, 409), summary="Pause or resume the membership")
def pause_membership(vehicle_id: VehicleId, body: PauseChange, me: Driver, conn: Db) -> MembershipState:
    _own(conn, me, vehicle_id)
    try:
        (rewards_store.pause if body.paused else rewards_store.resume)(conn, vehicle_id, now())
    except RewardsError as exc:
        raise _refused(exc) from exc
    return _membership(conn, vehicle_id)


# -- earnings ----------------------------------------------------------------------------------

@router.get("/v1/me/statement", response_model=Statement, tags=["me"], responses=responses(401, 403),
            summary="Your earnings: every ledger entry of your account, with running balances")
def my_statement(me: Driver, conn: Db) -> Statement:
    account = driver_account(me.driver_id)
    running: dict[str, int] = {}
    entries = []
    for e in rewards_store.entries(conn, account=account):
        running[e.asset] = running.get(e.asset, 0) + e.amount
        entries.append(StatementEntry(seq=e.seq, at=e.at, kind=e.kind, epoch=e.settles or None,
                                      asset=e.asset, amount=e.amount, balance=running[e.asset]))
    return Statement(account=account, entries=entries, balances=running)


@router.get("/v1/me/payouts/{epoch}/proof", tags=["me"], responses=responses(400, 401, 403, 404, 503),
            summary="An RFC 9162 inclusion proof of your payout in the epoch's signed root "
                    "(check it with rewards/verifier.py)")
def my_payout_proof(epoch: str, me: Driver, conn: Db, config: Settings) -> dict[str, Any]:
    assert me.driver_id is not None
    try:
        week = Week.parse(epoch)
    except RewardsError as exc:
        raise ApiProblem(400, str(exc), "invalid-request") from exc
    key = network_key_or_503(config)
    try:
        proofs = rewards_service.payout_proofs(conn, week, [me.driver_id], public_key_bytes(key))
    except RewardsError as exc:
        raise ApiProblem(404, str(exc), "not-found") from exc
    if me.driver_id not in proofs:
        raise ApiProblem(404, f"you were paid nothing in {epoch}", "not-found")
    return proofs[me.driver_id]


# -- my data: export and delete ----------------------------------------------------------------

_EXPORT_COLUMNS = ("vehicle_id", "ts", "name", "value")


@router.get("/v1/me/export", tags=["me"], responses=responses(400, 401, 403),
            response_class=StreamingResponse,
            summary="Every reading of your vehicles, streamed as NDJSON (one object a line) or CSV")
def export_my_data(me: Driver, request: Request,
                   format: Annotated[Literal["ndjson", "csv"], Query()] = "ndjson") -> StreamingResponse:
    assert me.driver_id is not None
    pool = request.app.state.pools[-1]
    driver_id = me.driver_id

    def rows() -> Iterator[tuple[Any, ...]]:
        with pool.connection() as conn:
            yield from queries.export_rows(conn, driver_id)

    def ndjson() -> Iterator[bytes]:
        for vehicle, ts, name, value in rows():
            yield (json.dumps({"vehicle_id": str(vehicle), "ts": ts.isoformat(), "name": name,
                               "value": value}) + "\n").encode()

    def as_csv() -> Iterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(_EXPORT_COLUMNS)
        for vehicle, ts, name, value in rows():
            writer.writerow((vehicle, ts.isoformat(), name,
                             json.dumps(value) if isinstance(value, dict) else value))
            if out.tell() > 64_000:
                yield out.getvalue().encode()
                out.seek(0)
                out.truncate()
        yield out.getvalue().encode()

    media = "application/x-ndjson" if format == "ndjson" else "text/csv"
    return StreamingResponse(ndjson() if format == "ndjson" else as_csv(), media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="motus-export.{format}"'})


@router.delete("/v1/me/telemetry", tags=["me"], responses=responses(401, 403),
               summary="Delete every reading of your vehicles (the ledger and the access log stay)")
def delete_my_telemetry(me: Driver, conn: Db) -> dict[str, int]:
    assert me.driver_id is not None
    return {"deleted_readings": queries.delete_telemetry(conn, me.driver_id)}

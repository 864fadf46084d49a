"""The FastAPI application. ``create_app`` is the only entry point; settings come in.

Routes are thin: who the caller is (api/auth.py), what they may read (api/access.py), the reads
and the access log (api/queries.py), errors as RFC 9457 problems (api/problems.py).

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, which name
dependencies local to ``create_app``."""

import base64
import binascii
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from psycopg_pool import ConnectionPool

from api import access, queries
from api.auth import SESSION_COOKIE, Caller, identify
from api.problems import ApiProblem, install, responses
from api.schemas import (
    AccessEntry,
    AccessLog,
    IssuedToken,
    LatestSignal,
    LatestSignals,
    LocationValue,
    Series,
    SeriesPoint,
    SignIn,
    TokenRequest,
    VehicleEntry,
    VehiclePage,
)
from api.settings import ApiSettings
from protocol.catalog import load_catalog
from registry.accounts import check_password, close_session, open_session
from registry.keys import create_personal_token
from rewards import service as rewards_service
from rewards import store as rewards_store

T = TypeVar("T")
MAX_RANGE = timedelta(days=31)
MAX_POINTS = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str | None, parse: Callable[[str], T]) -> T | None:
    if cursor is None:
        return None
    try:
        return parse(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiProblem(400, "the cursor is not one this API gave out", "invalid-cursor") from None


def create_app(settings: ApiSettings) -> FastAPI:
    pools: list[ConnectionPool[Any]] = []  # one per run of the app (a pool cannot be reopened)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        pool: ConnectionPool[Any] = ConnectionPool(
            settings.database_url, min_size=1, max_size=settings.api_pool_max, open=False,
            timeout=settings.api_db_timeout_s)
        pool.open()
        pools.append(pool)
        try:
            yield
        finally:
            pools.remove(pool)
            pool.close()

    # Swagger UI and ReDoc served from assets in the fastapi-offline package: /docs works on a
    # machine without internet, and the browser asks no CDN.
    app = FastAPIOffline(
        title="Motus data API",
        version="0.2.0",
        description=(
            "Vehicle data that drivers own and license. A developer reads a vehicle only while one "
            "of their licences covers it (membership, the driver's knob, the union's bylaws, "
            "strikes), only the signals in that licence's scope, and every read is logged for the "
            "driver to see. Values are in catalog units. Errors are RFC 9457 problem documents."),
        lifespan=lifespan,
    )
    install(app)
    catalog = load_catalog()
    bearer = HTTPBearer(auto_error=False, scheme_name="apiKey",
                        description="A developer API key (motus_live_…) or a personal token (motus_pat_…)")
    cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, scheme_name="session",
                          description="The console session of a driver or union operator")

    def database() -> Iterator[Any]:
        with pools[-1].connection() as conn:
            yield conn

    Db = Annotated[Any, Depends(database)]

    def caller(conn: Db, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
               session: Annotated[str | None, Depends(cookie)]) -> Caller:
        found = identify(conn, credentials.credentials if credentials else None, session, _now())
        conn.commit()  # last use of the key, whatever the request does next
        return found

    Who = Annotated[Caller, Depends(caller)]
    VehicleId = Annotated[UUID, Path(description="The vehicle's id")]

    def person(who: Caller) -> Caller:
        if who.kind != "person":
            raise ApiProblem(403, "this route is for drivers and union operators, not API keys of "
                                  "developers", "forbidden")
        return who

    @app.get("/healthz", tags=["operations"])
    def health(conn: Db) -> dict[str, str]:
        conn.execute("SELECT 1")
        return {"status": "ok"}

    # -- sign-in and tokens ---------------------------------------------------------------------

    @app.post("/v1/auth/session", status_code=204, tags=["sign-in"], responses=responses(400, 401),
              summary="Sign in with e-mail and password: sets an httpOnly session cookie")
    def sign_in(body: SignIn, request: Request, response: Response, conn: Db) -> None:
        if not check_password(conn, body.email.strip(), body.password):
            raise ApiProblem(401, "wrong e-mail or password", "unauthorized")
        token = open_session(conn, body.email.strip(), _now())
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=12 * 3600, path="/")

    @app.delete("/v1/auth/session", status_code=204, tags=["sign-in"], responses=responses(401, 403),
                summary="Sign out")
    def sign_out(who: Who, request: Request, response: Response, conn: Db) -> None:
        person(who)
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            close_session(conn, token, _now())
        response.delete_cookie(SESSION_COOKIE, path="/")

    @app.post("/v1/me/tokens", response_model=IssuedToken, status_code=201, tags=["sign-in"],
              responses=responses(400, 401, 403), summary="Mint a personal API token (shown once)")
    def mint_token(body: TokenRequest, who: Who, conn: Db) -> IssuedToken:
        email = person(who).email
        assert email is not None
        key, secret = create_personal_token(conn, email, body.label, _now())
        return IssuedToken(id=key.id, token=secret)

    # -- vehicles and their data ----------------------------------------------------------------

    @app.get("/v1/vehicles", response_model=VehiclePage, tags=["vehicles"], responses=responses(400, 401),
             summary="Vehicles you may read: licensed to you now, or your own")
    def vehicles(who: Who, conn: Db,
                 cursor: Annotated[str | None, Query(description="From the previous page")] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> VehiclePage:
        after = _decode(cursor, UUID)
        entries: list[VehicleEntry]
        if who.kind == "person":
            own = queries.own_vehicles(conn, who.driver_id) if who.driver_id else []
            entries = [VehicleEntry(vehicle_id=v, licences=[], vin=vin) for v, vin in own]
        else:
            assert who.developer_id is not None
            now = _now()
            by_vehicle: dict[UUID, list[UUID]] = {}
            for licence in rewards_store.licences_between(conn, now.date(), now.date() + timedelta(days=1),
                                                          developer_id=who.developer_id):
                for vehicle in rewards_service.covered_vehicles(conn, licence, now):
                    by_vehicle.setdefault(vehicle, []).append(licence.id)
            entries = [VehicleEntry(vehicle_id=v, licences=sorted(ls))
                       for v, ls in sorted(by_vehicle.items())]
        entries = [e for e in entries if after is None or e.vehicle_id > after]
        page = entries[:limit]
        more = len(entries) > limit
        return VehiclePage(vehicles=page, next_cursor=_encode(str(page[-1].vehicle_id)) if more else None)

    @app.get("/v1/vehicles/{vehicle_id}/signals/latest", response_model=LatestSignals, tags=["signals"],
             responses=responses(400, 401, 403, 404), summary="The newest value of each signal you may read")
    def latest_signals(vehicle_id: VehicleId, who: Who, conn: Db,
                       name: Annotated[list[str] | None, Query(description="Only these signals (repeatable)")]
                       = None) -> LatestSignals:
        wanted = sorted(set(name)) if name else []
        unknown = [n for n in wanted if n not in catalog]
        if unknown:
            raise ApiProblem(400, f"unknown signal name(s): {', '.join(unknown)}", "unknown-signal")
        now = _now()
        grant = access.grant_for(conn, who, vehicle_id, wanted, now)
        names = wanted or sorted(grant.signals)
        signals = []
        for signal_name, ts, value in queries.latest(conn, vehicle_id, names):
            spec = catalog.get(signal_name)
            if spec is None:  # a name retired from the catalog since it was stored
                continue
            signals.append(LatestSignal(name=signal_name, value=value, unit=spec.unit, timestamp=ts,
                                        privilege=spec.privilege.value))
        if grant.licence is not None and signals:
            assert who.developer_id is not None
            stamps = [s.timestamp for s in signals]
            queries.log_access(conn, developer_id=who.developer_id, key_id=who.key_id,
                               licence_id=grant.licence.id, purpose=grant.licence.purpose.value,
                               vehicle_id=vehicle_id, signals=[s.name for s in signals],
                               start=min(stamps), end=max(stamps), rows=len(signals), at=now)
        return LatestSignals(vehicle_id=vehicle_id, signals=signals)

    @app.get("/v1/vehicles/{vehicle_id}/signals/{name}/series", response_model=Series, tags=["signals"],
             responses=responses(400, 401, 403, 404),
             summary="A signal over time, in buckets of an interval, aggregated")
    def signal_series(
        vehicle_id: VehicleId, name: Annotated[str, Path(description="A catalog signal name")],
        who: Who, conn: Db,
        start: Annotated[datetime, Query(alias="from", description="Start (RFC 3339, inclusive)")],
        end: Annotated[datetime, Query(alias="to", description="End (RFC 3339, exclusive)")],
        interval: Annotated[str, Query(description=f"One of {', '.join(queries.INTERVALS)}")] = "1h",
        agg: Annotated[str, Query(description="avg, min, max, median, first or last (text and "
                                              "locations: first or last)")] = "avg",
        cursor: Annotated[str | None, Query(description="From the previous page")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_POINTS, description="Points per page")] = 1000,
    ) -> Series:
        spec = catalog.get(name)
        if spec is None:
            raise ApiProblem(400, f"unknown signal name: {name}", "unknown-signal")
        if start.tzinfo is None or end.tzinfo is None:
            raise ApiProblem(400, "from and to need a time zone (e.g. 2026-11-01T00:00:00Z)",
                             "invalid-request")
        if not start < end or end - start > MAX_RANGE:
            raise ApiProblem(400, f"from must be before to, at most {MAX_RANGE.days} days apart",
                             "invalid-range")
        if interval not in queries.INTERVALS:
            raise ApiProblem(400, f"interval must be one of {', '.join(queries.INTERVALS)}",
                             "invalid-request")
        allowed = queries.NUMERIC_AGGREGATIONS if spec.type.value == "float" else queries.ORDERED_AGGREGATIONS
        if agg not in allowed:
            raise ApiProblem(400, f"{name} can be aggregated with {', '.join(allowed)}", "invalid-request")
        step = queries.INTERVALS[interval]
        if (end - start).total_seconds() / step > 100 * MAX_POINTS:
            raise ApiProblem(400, "too many points: use a longer interval", "invalid-range")
        page_start = _decode(cursor, datetime.fromisoformat) or start
        if not start <= page_start < end:
            raise ApiProblem(400, "the cursor is outside from..to", "invalid-cursor")
        now = _now()
        grant = access.grant_for(conn, who, vehicle_id, [name], now)
        q = queries.SeriesQuery(vehicle_id, name, page_start, end, step, agg, limit + 1)
        rows = queries.series(conn, q)
        more = len(rows) > limit
        rows = rows[:limit]
        points = [SeriesPoint(t=t, value=LocationValue(**v) if isinstance(v, dict) else v) for t, v in rows]
        if grant.licence is not None and points:
            assert who.developer_id is not None
            queries.log_access(conn, developer_id=who.developer_id, key_id=who.key_id,
                               licence_id=grant.licence.id, purpose=grant.licence.purpose.value,
                               vehicle_id=vehicle_id, signals=[name], start=page_start,
                               end=min(end, rows[-1][0] + timedelta(seconds=step)), rows=len(points), at=now)
        return Series(vehicle_id=vehicle_id, name=name, unit=spec.unit, interval=interval, aggregation=agg,
                      source="rollups" if queries.uses_rollups(q) else "raw",
                      licence_id=grant.licence.id if grant.licence else None, points=points,
                      next_cursor=(_encode((rows[-1][0] + timedelta(seconds=step)).isoformat())
                                   if more else None))

    # -- the driver's side ----------------------------------------------------------------------

    @app.get("/v1/me/access-log", response_model=AccessLog, tags=["me"], responses=responses(400, 401, 403),
             summary="Who read your vehicles' data: every read that returned data, newest first")
    def my_access_log(who: Who, conn: Db, cursor: Annotated[str | None, Query()] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AccessLog:
        me = person(who)
        if me.driver_id is None:
            return AccessLog(entries=[], next_cursor=None)
        rows = queries.access_log(conn, me.driver_id, _decode(cursor, int), limit + 1)
        entries = [AccessEntry(id=r[0], at=r[1], developer=r[2], developer_id=r[3], api_key_id=r[4],
                               licence_id=r[5], purpose=r[6], vehicle_id=r[7], signals=list(r[8]),
                               range_from=r[9], range_to=r[10], rows=r[11]) for r in rows[:limit]]
        more = len(rows) > limit
        return AccessLog(entries=entries, next_cursor=_encode(str(entries[-1].id)) if more else None)

    return app

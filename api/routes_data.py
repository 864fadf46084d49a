"""Vehicles and their data: what a developer may read under a licence, or a driver of their own."""

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query

from api import access, queries
from api.auth import Caller
from api.deps import Db, VehicleId, Who, aware, decode_cursor, encode_cursor
from api.deps import now as clock
from api.problems import ApiProblem, responses
from api.schemas import (
    DailySummary,
    DaySummary,
    LatestSignal,
    LatestSignals,
    LocationValue,
    Place,
    Series,
    SeriesPoint,
    TripEntry,
    Trips,
    VehicleEntry,
    VehiclePage,
)
from movement.trips import segment
from protocol.catalog import load_catalog
from rewards import service as rewards_service
from rewards import store as rewards_store

router = APIRouter()


def _logged(conn: Any, who: Caller, grant: access.Grant, signals: list[str], start: datetime,
            end: datetime, rows: int, at: datetime) -> None:
    """A read served under a licence goes into the access log, in the read's transaction (a
    driver's reads of their own data are free and not logged)."""
    if grant.licence is None:
        return
    assert who.developer_id is not None
    queries.log_access(conn, developer_id=who.developer_id, key_id=who.key_id, licence_id=grant.licence.id,
                       purpose=grant.licence.purpose.value, vehicle_id=grant.vehicle_id, signals=signals,
                       start=start, end=end, rows=rows, at=at)
catalog = load_catalog()
MAX_RANGE = timedelta(days=31)
MAX_POINTS = 10_000


@router.get("/v1/vehicles", response_model=VehiclePage, tags=["vehicles"], responses=responses(400, 401),
         summary="Vehicles you may read: licensed to you now, or your own")
def vehicles(who: Who, conn: Db,
             cursor: Annotated[str | None, Query(description="From the previous page")] = None,
             limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> VehiclePage:
    after = decode_cursor(cursor, UUID)
    entries: list[VehicleEntry]
    if who.kind == "person":
        own = queries.own_vehicles(conn, who.driver_id) if who.driver_id else []
        entries = [VehicleEntry(vehicle_id=v, licences=[], vin=vin) for v, vin in own]
    else:
        assert who.developer_id is not None
        now = clock()
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
    return VehiclePage(vehicles=page, next_cursor=encode_cursor(str(page[-1].vehicle_id)) if more else None)

@router.get("/v1/vehicles/{vehicle_id}/signals/latest", response_model=LatestSignals, tags=["signals"],
         responses=responses(400, 401, 403, 404), summary="The newest value of each signal you may read")
def latest_signals(vehicle_id: VehicleId, who: Who, conn: Db,
                   name: Annotated[list[str] | None, Query(description="Only these signals (repeatable)")]
                   = None) -> LatestSignals:
    wanted = sorted(set(name)) if name else []
    unknown = [n for n in wanted if n not in catalog]
    if unknown:
        raise ApiProblem(400, f"unknown signal name(s): {', '.join(unknown)}", "unknown-signal")
    now = clock()
    grant = access.grant_for(conn, who, vehicle_id, wanted, now)
    names = wanted or sorted(grant.signals)
    signals = []
    for signal_name, ts, value in queries.latest(conn, vehicle_id, names):
        spec = catalog.get(signal_name)
        if spec is None:  # a name retired from the catalog since it was stored
            continue
        signals.append(LatestSignal(name=signal_name, value=value, unit=spec.unit, timestamp=ts,
                                    privilege=spec.privilege.value))
    if signals:
        stamps = [s.timestamp for s in signals]
        _logged(conn, who, grant, [s.name for s in signals], min(stamps), max(stamps), len(signals), now)
    return LatestSignals(vehicle_id=vehicle_id, signals=signals)

@router.get("/v1/vehicles/{vehicle_id}/signals/{name}/series", response_model=Series, tags=["signals"],
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
    page_start = decode_cursor(cursor, aware) or start
    if not start <= page_start < end:
        raise ApiProblem(400, "the cursor is outside from..to", "invalid-cursor")
    now = clock()
    grant = access.grant_for(conn, who, vehicle_id, [name], now)
    q = queries.SeriesQuery(vehicle_id, name, page_start, end, step, agg, limit + 1)
    rows = queries.series(conn, q)
    more = len(rows) > limit
    rows = rows[:limit]
    points = [SeriesPoint(t=t, value=LocationValue(**v) if isinstance(v, dict) else v) for t, v in rows]
    if points:
        _logged(conn, who, grant, [name], page_start, min(end, rows[-1][0] + timedelta(seconds=step)),
                len(points), now)
    return Series(vehicle_id=vehicle_id, name=name, unit=spec.unit, interval=interval, aggregation=agg,
                  source="rollups" if queries.uses_rollups(q) else "raw",
                  licence_id=grant.licence.id if grant.licence else None, points=points,
                  next_cursor=(encode_cursor((rows[-1][0] + timedelta(seconds=step)).isoformat())
                               if more else None))


TRIP_SIGNALS = ("speed", "isIgnitionOn", "powertrainTransmissionTravelledDistance")
LOCATION = "currentLocationCoordinates"


def _range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ApiProblem(400, "from and to need a time zone (e.g. 2026-11-01T00:00:00Z)", "invalid-request")
    if not start < end or end - start > MAX_RANGE:
        raise ApiProblem(400, f"from must be before to, at most {MAX_RANGE.days} days apart", "invalid-range")


@router.get("/v1/vehicles/{vehicle_id}/trips", response_model=Trips, tags=["trips"],
            responses=responses(400, 401, 403, 404),
            summary="Trips (from speed, ignition and gaps): start, end, duration, distance; places with "
                    "the location privilege")
def trips(vehicle_id: VehicleId, who: Who, conn: Db,
          start: Annotated[datetime, Query(alias="from", description="Start (RFC 3339, inclusive)")],
          end: Annotated[datetime, Query(alias="to", description="End (RFC 3339, exclusive)")],
          cursor: Annotated[str | None, Query(description="From the previous page")] = None,
          limit: Annotated[int, Query(ge=1, le=200)] = 100) -> Trips:
    _range(start, end)
    now = clock()
    grant = access.grant_for(conn, who, vehicle_id, ["speed"], now)
    places = LOCATION in grant.signals
    after = decode_cursor(cursor, aware)
    readings = {name: queries.numeric_samples(conn, vehicle_id, name, start, end)
                for name in TRIP_SIGNALS if name in grant.signals}
    fixes = queries.location_fixes(conn, vehicle_id, start, end) if places else []
    found = segment(readings.get("speed", []), ignition=readings.get("isIgnitionOn", []),
                    odometer=readings.get("powertrainTransmissionTravelledDistance", []), fixes=fixes)
    found = [t for t in found if after is None or t.start > after]
    page, more = found[:limit], len(found) > limit

    def place(fix: Any) -> Place | None:
        return Place(latitude=fix.latitude, longitude=fix.longitude, at=fix.ts) if places and fix else None

    entries = [TripEntry(start=t.start, end=t.end, duration_s=t.duration_s, distance_km=t.distance_km,
                         distance_source=t.distance_source, start_place=place(t.start_fix),
                         end_place=place(t.end_fix)) for t in page]
    if entries:
        used = [n for n in (*TRIP_SIGNALS, LOCATION) if n in readings or (n == LOCATION and places)]
        _logged(conn, who, grant, used, start, end, len(entries), now)
    return Trips(vehicle_id=vehicle_id, licence_id=grant.licence.id if grant.licence else None,
                 trips=entries, next_cursor=encode_cursor(page[-1].start.isoformat()) if more else None)


@router.get("/v1/vehicles/{vehicle_id}/days", response_model=DailySummary, tags=["trips"],
            responses=responses(400, 401, 403, 404),
            summary="A daily summary: distance and whether each UTC day is proven driven")
def daily_summary(vehicle_id: VehicleId, who: Who, conn: Db,
                  first: Annotated[date, Query(alias="from", description="First day (YYYY-MM-DD)")],
                  last: Annotated[date, Query(alias="to", description="Last day, included")]) -> DailySummary:
    if not first <= last or (last - first).days > 366:
        raise ApiProblem(400, "from must not be after to, at most 366 days apart", "invalid-range")
    now = clock()
    grant = access.grant_for(conn, who, vehicle_id, ["speed"], now)
    days = [DaySummary(day=d, distance_km=km, verdict=verdict, proven=verdict == "moved")
            for d, verdict, km in queries.daily_proofs(conn, vehicle_id, first, last)]
    if days:
        midnight = datetime.min.time().replace(tzinfo=now.tzinfo)
        _logged(conn, who, grant, ["speed"], datetime.combine(first, midnight),
                datetime.combine(last + timedelta(days=1), midnight), len(days), now)
    return DailySummary(vehicle_id=vehicle_id, licence_id=grant.licence.id if grant.licence else None,
                        days=days,
                        distance_km=round(sum(d.distance_km or 0.0 for d in days if d.proven), 3),
                        proven_days=sum(d.proven for d in days))

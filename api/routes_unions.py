"""A union operator's routes: the union's bylaws, members and licences, grants and revocations,
strikes. The operator of another union gets 404 for this one."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path

from api.deps import Db, Person, Settings, network_key_or_503, now
from api.problems import ApiProblem, responses
from api.schemas import GrantRequest, LicenceEntry, MemberEntry, StrikeChange, UnionDetail
from registry.developers import find_developer
from rewards import service as rewards_service
from rewards import store as rewards_store
from rewards.bylaws import StrikeCall, bylaws_document
from rewards.errors import RewardsError

router = APIRouter()
Slug = Annotated[str, Path(description="The union's name", pattern="^[a-z0-9][a-z0-9-]{1,39}$")]


def _operated(conn: Any, me: Any, slug: str) -> rewards_store.Union:
    try:
        union = rewards_store.union_by_slug(conn, slug)
    except RewardsError:
        union = None
    if union is None or union.id not in me.unions:
        raise ApiProblem(404, f"no union {slug!r} that you operate", "not-found")
    return union


def _licence(lic: Any, at: datetime) -> LicenceEntry:
    return LicenceEntry(id=lic.id, developer_id=lic.developer_id, purpose=lic.purpose.value,
                        scope=list(lic.scope), starts=lic.starts, ends=lic.ends,
                        price_minor=lic.price_minor, running=lic.running_at(at),
                        revoked_at=lic.revoked_at)


@router.get("/v1/unions/{slug}", response_model=UnionDetail, tags=["operators"],
            responses=responses(400, 401, 403, 404),
            summary="Your union: bylaws in force, members, requests waiting, licences, strikes")
def union_detail(slug: Slug, me: Person, conn: Db) -> UnionDetail:
    union = _operated(conn, me, slug)
    at = now()
    in_force = rewards_store.bylaws_in_force(conn, union.id, at.date())
    licences = rewards_store.licences_between(conn, datetime.min.date(), datetime.max.date(),
                                              union_id=union.id)
    strikes = [s for s in rewards_store.strikes_between(conn, at, at.replace(year=at.year + 100))
               if s.union_id == union.id]
    return UnionDetail(
        slug=union.slug, operator=union.operator_email,
        bylaws=bylaws_document(in_force[1]) if in_force else None,
        bylaws_version=in_force[0] if in_force else None,
        members=[MemberEntry(vehicle_id=v, joined_at=joined, paused=paused)
                 for v, joined, paused in rewards_store.member_vehicles(conn, union.id)],
        requests_waiting=[v for v, _ in rewards_store.pending_requests(conn, union.id)],
        licences=[_licence(lic, at) for lic in licences],
        on_strike=bool(strikes))


@router.post("/v1/unions/{slug}/licences", status_code=201, tags=["operators"],
             responses=responses(400, 401, 403, 404, 409, 503),
             summary="Grant a licence under the bylaws in force; answers its signed provenance receipt")
def grant_licence(slug: Slug, body: GrantRequest, me: Person, conn: Db, config: Settings) -> dict[str, Any]:
    union = _operated(conn, me, slug)
    developer = find_developer(conn, body.developer)
    if developer is None:
        raise ApiProblem(404, f"no developer named {body.developer!r}", "not-found")
    at = now()
    try:
        granted = rewards_service.grant(
            conn, union, developer, purpose=body.purpose, scope=tuple(body.scope),
            starts=datetime.combine(body.starts, time(0), tzinfo=UTC) if body.starts else at,
            days=body.days, price_minor=body.price_minor,
            key=network_key_or_503(config), now=at)
    except RewardsError as exc:
        raise ApiProblem(409, str(exc), "refused") from exc
    return granted.receipt


@router.delete("/v1/unions/{slug}/licences/{licence_id}", response_model=LicenceEntry, tags=["operators"],
               responses=responses(400, 401, 403, 404),
               summary="Revoke a licence: it covers nobody from the next request")
def revoke_licence(slug: Slug, licence_id: UUID, me: Person, conn: Db) -> LicenceEntry:
    union = _operated(conn, me, slug)
    try:
        terms, _ = rewards_store.licence(conn, licence_id)
    except RewardsError:
        terms = None
    if terms is None or terms.union_id != union.id:
        raise ApiProblem(404, f"no licence {licence_id} of {slug}", "not-found")
    rewards_store.revoke_licence(conn, licence_id, now())
    return _licence(rewards_store.licence(conn, licence_id)[0], now())


@router.put("/v1/unions/{slug}/strike", response_model=UnionDetail, tags=["operators"],
            responses=responses(400, 401, 403, 404, 409),
            summary="Call or end a data strike (unions whose bylaws let the operator call it)")
def strike(slug: Slug, body: StrikeChange, me: Person, conn: Db) -> UnionDetail:
    union = _operated(conn, me, slug)
    at = now()
    in_force = rewards_store.bylaws_in_force(conn, union.id, at.date())
    if in_force is None or in_force[1].strike.called_by is not StrikeCall.OPERATOR:
        raise ApiProblem(409, f"the bylaws of {slug} call a strike by member vote, not by the operator",
                         "refused")
    try:
        if body.on:
            rewards_store.call_strike(conn, union.id, None, StrikeCall.OPERATOR.value, None, body.reason, at)
        else:
            rewards_store.end_strike(conn, union.id, None, at)
    except RewardsError as exc:
        raise ApiProblem(409, str(exc), "conflict") from exc
    return union_detail(slug, me, conn)

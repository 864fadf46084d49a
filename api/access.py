"""Who may read what: a developer reads a vehicle only under a licence that covers it now (the
union's bylaws, the driver's knob, membership, strikes: rewards.coverage), and only the signals
in that licence's scope; a driver reads their own vehicles. Judged on every request, so a change
takes effect on the next one. A vehicle a caller may not read is 404, as if it did not exist."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from api import queries
from api.auth import Caller
from api.problems import ApiProblem
from protocol.catalog import load_catalog
from rewards import store as rewards_store
from rewards.coverage import refusal
from rewards.records import LicenceTerms, scope_signals

_INSTANT = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Grant:
    """Why a read is allowed: the licence it is served under (None: the driver's own data)."""

    vehicle_id: UUID
    licence: LicenceTerms | None
    signals: frozenset[str]  # the signal names it may return


def not_found(vehicle_id: UUID) -> ApiProblem:
    return ApiProblem(404, f"no vehicle {vehicle_id} that you may read", "not-found")


def covering_licences(conn: Any, developer_id: UUID, vehicle_id: UUID, at: datetime) -> list[LicenceTerms]:
    """The developer's licences that cover the vehicle at ``at``, by id."""
    memberships = rewards_store.memberships_between(conn, at, at + _INSTANT, vehicle_id=vehicle_id)
    if not memberships:
        return []
    member = memberships[0]
    licences = rewards_store.licences_between(conn, at.date(), at.date() + timedelta(days=1),
                                              union_id=member.union_id, developer_id=developer_id)
    if not licences:
        return []
    in_force = rewards_store.bylaws_in_force(conn, member.union_id, at.date())
    knobs = rewards_store.knob_histories(conn, at + _INSTANT, [member.owner_id])
    strikes = rewards_store.strikes_between(conn, at, at + _INSTANT)
    bylaws = in_force[1] if in_force else None
    return sorted((lic for lic in licences
                   if refusal(lic, member, knobs, bylaws, strikes, at) is None), key=lambda lic: lic.id)


def all_signals() -> frozenset[str]:
    return frozenset(spec.name for spec in load_catalog())


def grant_for(conn: Any, caller: Caller, vehicle_id: UUID, names: Iterable[str], at: datetime) -> Grant:
    """The grant to read ``names`` (all the caller may, when empty) of the vehicle now; 404 when
    the caller may not read the vehicle at all, 403 when a named signal is outside every licence
    that covers it."""
    wanted = sorted(set(names))
    if caller.kind == "person":
        if caller.driver_id is None or queries.owner_of(conn, vehicle_id) != caller.driver_id:
            raise not_found(vehicle_id)
        return Grant(vehicle_id, None, all_signals())
    assert caller.developer_id is not None
    licences = covering_licences(conn, caller.developer_id, vehicle_id, at)
    if not licences:
        raise not_found(vehicle_id)
    scopes = [(lic, scope_signals(lic.scope)) for lic in licences]
    if wanted:
        for lic, signals in scopes:
            if all(n in signals for n in wanted):
                return Grant(vehicle_id, lic, signals)
        outside = [n for n in wanted if not any(n in s for _, s in scopes)]
        raise ApiProblem(403, "no licence of yours covers these signals of this vehicle: "
                         + ", ".join(outside or wanted) + " (one request is served under one licence)",
                         "signals-not-licensed")
    lic, signals = max(scopes, key=lambda item: (len(item[1]), str(item[0].id)))
    return Grant(vehicle_id, lic, signals)

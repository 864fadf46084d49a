"""Value objects of the money side: what the store loads and the cores compute on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from uuid import UUID

from protocol.catalog import Privilege, load_catalog
from rewards.bylaws import Purpose
from rewards.errors import LicenceError


@dataclass(frozen=True, slots=True)
class Interval:
    """[start, end): end None means still open."""

    start: datetime
    end: datetime | None = None

    def contains(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


@dataclass(frozen=True, slots=True)
class Membership:
    vehicle_id: UUID
    owner_id: UUID
    union_id: UUID
    period: Interval
    pauses: tuple[Interval, ...] = ()

    def active_at(self, at: datetime) -> bool:
        return self.period.contains(at) and not any(p.contains(at) for p in self.pauses)


@dataclass(frozen=True, slots=True)
class KnobSetting:
    driver_id: UUID
    at: datetime
    level: int


@dataclass(frozen=True, slots=True)
class Strike:
    union_id: UUID
    developer_id: UUID | None  # None: against every licence of the union
    period: Interval
    reason: str = ""

    def stops(self, licence: LicenceTerms, at: datetime) -> bool:
        return (self.union_id == licence.union_id and self.period.contains(at)
                and (self.developer_id is None or self.developer_id == licence.developer_id))


@cache
def scope_privileges(scope: tuple[str, ...]) -> frozenset[Privilege]:
    """The privilege classes a licence scope reads: each item is a class or a signal name."""
    catalog = load_catalog()
    classes: set[Privilege] = set()
    unknown: list[str] = []
    for item in scope:
        if item in {p.value for p in Privilege}:
            classes.add(Privilege(item))
        elif (spec := catalog.get(item)) is not None:
            classes.add(spec.privilege)
        else:
            unknown.append(item)
    if unknown:
        raise LicenceError(f"unknown signal or privilege class in the scope: {', '.join(unknown)}")
    if not classes:
        raise LicenceError("a licence scope names at least one signal or privilege class")
    return frozenset(classes)


def scope_signals(scope: tuple[str, ...]) -> frozenset[str]:
    """Every signal name the scope lets a holder read."""
    catalog = load_catalog()
    names: set[str] = set()
    for item in scope:
        if item in {p.value for p in Privilege}:
            names.update(s.name for s in catalog if s.privilege == Privilege(item))
        else:
            names.add(item)
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class LicenceTerms:
    id: UUID
    union_id: UUID
    developer_id: UUID
    purpose: Purpose
    scope: tuple[str, ...]
    starts: date
    ends: date  # exclusive
    price_minor: int  # per covered vehicle per 30 days
    granted_at: datetime
    revoked_at: datetime | None = None

    @property
    def privileges(self) -> frozenset[Privilege]:
        return scope_privileges(self.scope)

    def running_at(self, at: datetime) -> bool:
        """Within its days, granted already (never before it was granted), not revoked."""
        return (self.starts <= at.date() < self.ends and self.granted_at <= at
                and (self.revoked_at is None or at < self.revoked_at))

"""Response bodies of the data API (they are its OpenAPI schema)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from rewards.bylaws import Purpose


class LocationValue(BaseModel):
    latitude: float
    longitude: float
    hdop: float | None = None


class LatestSignal(BaseModel):
    name: str = Field(examples=["speed"])
    value: float | str | LocationValue = Field(examples=[72.0])
    unit: str = Field(description="Catalog unit; empty for unitless values", examples=["km/h"])
    timestamp: datetime = Field(description="When the vehicle measured it (UTC)")
    privilege: str = Field(description="'location' or 'non-location'")


class LatestSignals(BaseModel):
    vehicle_id: UUID
    signals: list[LatestSignal]


class ApiError(BaseModel):
    detail: str


class VehicleEntry(BaseModel):
    vehicle_id: UUID
    licences: list[UUID] = Field(description="Your licences that cover it now (developers); empty for "
                                             "your own vehicles")
    vin: str | None = Field(default=None, description="Only for your own vehicles")


class VehiclePage(BaseModel):
    vehicles: list[VehicleEntry]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


class SeriesPoint(BaseModel):
    t: datetime = Field(description="Start of the bucket (UTC)")
    value: float | str | LocationValue


class Series(BaseModel):
    vehicle_id: UUID
    name: str
    unit: str
    interval: str
    aggregation: str
    source: str = Field(description="'rollups' (hourly rollups) or 'raw' (every reading)")
    licence_id: UUID | None = Field(description="The licence this read was served under; null for "
                                                "your own data")
    points: list[SeriesPoint]
    next_cursor: str | None


class AccessEntry(BaseModel):
    id: int
    at: datetime
    developer: str
    developer_id: UUID
    api_key_id: str | None
    licence_id: UUID
    purpose: str
    vehicle_id: UUID
    signals: list[str]
    range_from: datetime
    range_to: datetime
    rows: int


class AccessLog(BaseModel):
    entries: list[AccessEntry]
    next_cursor: str | None


class SignIn(BaseModel):
    email: str = Field(examples=["ana@example.com"])
    password: str = Field(min_length=1, max_length=1024)


class TokenRequest(BaseModel):
    label: str = Field(default="", max_length=80)


class IssuedToken(BaseModel):
    id: str
    token: str = Field(description="Shown once: store it now")


class KnobState(BaseModel):
    level: str = Field(examples=["vehicle"])
    means: str = Field(description="What the level lets licences read, in one sentence")
    levels: dict[str, str] = Field(description="Every level and its sentence")


class KnobChoice(BaseModel):
    level: str = Field(pattern="^(private|vehicle|location)$", examples=["location"])


class MembershipState(BaseModel):
    vehicle_id: UUID
    union: str | None = Field(description="The union's name, or null")
    admitted: bool = Field(description="False while a union that admits by approval has not approved")
    paused: bool


class MembershipChange(BaseModel):
    union: str = Field(pattern="^[a-z0-9][a-z0-9-]{1,39}$", examples=["lakeside"])


class PauseChange(BaseModel):
    paused: bool


class StatementEntry(BaseModel):
    seq: int
    at: str
    kind: str
    epoch: str | None
    asset: str = Field(description="EUR (cents) or MOTUS (millionths of a token)")
    amount: int
    balance: int


class Statement(BaseModel):
    account: str
    entries: list[StatementEntry]
    balances: dict[str, int]


class LicenceEntry(BaseModel):
    id: UUID
    developer_id: UUID
    purpose: str
    scope: list[str]
    starts: date
    ends: date
    price_minor: int
    running: bool
    revoked_at: datetime | None


class MemberEntry(BaseModel):
    vehicle_id: UUID
    joined_at: datetime
    paused: bool


class UnionDetail(BaseModel):
    slug: str
    operator: str
    bylaws: dict[str, Any] | None = Field(description="The bylaws in force (format motus-bylaws-v1)")
    bylaws_version: int | None
    members: list[MemberEntry]
    requests_waiting: list[UUID]
    licences: list[LicenceEntry]
    on_strike: bool


class GrantRequest(BaseModel):
    developer: str = Field(min_length=1, max_length=120, description="The developer's organisation")
    purpose: Purpose
    scope: list[str] = Field(min_length=1, max_length=200,
                             description="Signal names or privilege classes (non-location, location)")
    days: int = Field(default=30, ge=1, le=3660)
    price_minor: int = Field(ge=0, le=10**9, description="Per covered vehicle per 30 days, in cents")
    starts: date | None = Field(default=None, description="First day (UTC), today or later; default today")


class StrikeChange(BaseModel):
    on: bool
    reason: str = Field(default="", max_length=500)


class Place(BaseModel):
    latitude: float
    longitude: float
    at: datetime


class TripEntry(BaseModel):
    start: datetime
    end: datetime
    duration_s: float
    distance_km: float
    distance_source: str = Field(description="odometer, speed (its integral) or gps")
    start_place: Place | None = Field(description="Only with the location privilege")
    end_place: Place | None = Field(description="Only with the location privilege")


class Trips(BaseModel):
    vehicle_id: UUID
    licence_id: UUID | None
    trips: list[TripEntry]
    next_cursor: str | None


class DaySummary(BaseModel):
    day: date
    distance_km: float | None
    verdict: str = Field(description="The proof of movement: moved, still, insufficient or refused")
    proven: bool = Field(description="The day counts as driven for rewards")


class DailySummary(BaseModel):
    vehicle_id: UUID
    licence_id: UUID | None
    days: list[DaySummary]
    distance_km: float
    proven_days: int

"""Response bodies of the data API (they are its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field


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

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

"""The device registry as ingest sees it: who may speak, with which key, for which vehicle."""

from __future__ import annotations

import time
from typing import cast
from uuid import UUID

import psycopg

from ingest.pipeline import DeviceRecord


class DeviceDirectory:
    """Device records by id, cached for ``ttl_s`` (a revocation takes effect within it)."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]], ttl_s: float = 5.0) -> None:
        self.conn = conn
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, DeviceRecord | None]] = {}

    def lookup(self, device_id: str) -> DeviceRecord | None:
        now = time.monotonic()
        cached = self._cache.get(device_id)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT public_key, vehicle_id, revoked_at IS NOT NULL FROM devices WHERE id = %s",
                (device_id,),
            ).fetchone()
        record = (
            DeviceRecord(device_id, cast(bytes, row[0]), cast(UUID | None, row[1]), bool(row[2]))
            if row is not None
            else None
        )
        self._cache[device_id] = (now, record)
        return record


def add_driver(conn: psycopg.Connection[tuple[object, ...]], email: str) -> UUID:
    row = conn.execute(
        "INSERT INTO drivers (email) VALUES (%s)"
        " ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id",
        (email,),
    ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def add_vehicle(
    conn: psycopg.Connection[tuple[object, ...]],
    owner_id: UUID,
    *,
    vin: str | None = None,
    make: str | None = None,
    model: str | None = None,
    year: int | None = None,
) -> UUID:
    row = conn.execute(
        "INSERT INTO vehicles (owner_id, vin, make, model, year) VALUES (%s, %s, %s, %s, %s)"
        " RETURNING id",
        (owner_id, vin, make, model, year),
    ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def add_device(
    conn: psycopg.Connection[tuple[object, ...]],
    device_id: str,
    public_key: bytes,
    owner_id: UUID,
    vehicle_id: UUID | None,
) -> None:
    conn.execute(
        "INSERT INTO devices (id, public_key, owner_id, vehicle_id) VALUES (%s, %s, %s, %s)",
        (device_id, public_key, owner_id, vehicle_id),
    )


def enroll_vehicle(
    conn: psycopg.Connection[tuple[object, ...]],
    *,
    email: str,
    device_id: str,
    public_key: bytes,
    vin: str | None = None,
    make: str | None = None,
    model: str | None = None,
    year: int | None = None,
) -> UUID:
    """Driver (created if new), vehicle, and a device paired to it; returns the vehicle id."""
    driver = add_driver(conn, email)
    vehicle = add_vehicle(conn, driver, vin=vin, make=make, model=model, year=year)
    add_device(conn, device_id, public_key, driver, vehicle)
    return vehicle

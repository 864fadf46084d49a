"""The device registry as ingest sees it: who may speak, with which key, for which vehicle."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import cast
from uuid import UUID

import psycopg

from ingest.pipeline import DeviceRecord


class DeviceDirectory:
    """Device records by id, cached for ``ttl_s``.

    Revocations do not wait for the cache: ``refresh_revocations`` (called before each batch)
    marks devices revoked since the last call, so a revocation applies from the next batch on.
    """

    #: Re-read revocations this far back, so one committed while we asked is not missed.
    REVOCATION_OVERLAP_S = 60.0

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]], ttl_s: float = 5.0) -> None:
        self.conn = conn
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, DeviceRecord | None]] = {}
        self._revocations_since: datetime | None = None

    def refresh_revocations(self) -> None:
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT now(), coalesce(array_agg(id), '{}') FROM devices"
                " WHERE revoked_at >= coalesce(%s, now()) - make_interval(secs => %s)",
                (self._revocations_since, self.REVOCATION_OVERLAP_S),
            ).fetchone()
        assert row is not None
        self._revocations_since = cast(datetime, row[0])
        for device_id in cast(list[str], row[1]):
            cached = self._cache.get(device_id)
            if cached is not None and cached[1] is not None and not cached[1].revoked:
                record = cached[1]
                self._cache[device_id] = (cached[0], DeviceRecord(
                    record.device_id, record.public_key, record.vehicle_id, revoked=True))

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
        if record is not None and (record.vehicle_id is not None or record.revoked):
            # Unknown and unpaired devices are not cached: pairing must apply at once, and
            # the broker lets no unregistered device publish, so they are rare.
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


def find_or_add_vehicle(conn: psycopg.Connection[tuple[object, ...]], owner_id: UUID,
                        vin: str) -> UUID:
    """The owner's vehicle with this VIN, created if new; a VIN owned by another driver is
    an error (RegistryError)."""
    row = conn.execute("SELECT id, owner_id FROM vehicles WHERE vin = %s", (vin,)).fetchone()
    if row is None:
        return add_vehicle(conn, owner_id, vin=vin)
    if UUID(str(row[1])) != owner_id:
        raise RegistryError(f"vehicle {vin} belongs to another driver")
    return UUID(str(row[0]))


class RegistryError(Exception):
    """A registry change that the registry's rules refuse (blame: the request)."""


@dataclass(frozen=True, slots=True)
class BrokerPassword:
    """What the database keeps of a device's broker password (migration 0004)."""

    hash_hex: str
    salt: str


def add_device(
    conn: psycopg.Connection[tuple[object, ...]],
    device_id: str,
    public_key: bytes,
    owner_id: UUID,
    vehicle_id: UUID | None,
    password: BrokerPassword | None = None,
) -> None:
    conn.execute(
        "INSERT INTO devices (id, public_key, owner_id, vehicle_id, mqtt_password_hash,"
        " mqtt_password_salt) VALUES (%s, %s, %s, %s, %s, %s)",
        (device_id, public_key, owner_id, vehicle_id,
         password.hash_hex if password else None, password.salt if password else None),
    )


def revoke_device(conn: psycopg.Connection[tuple[object, ...]], device_id: str) -> datetime | None:
    """Mark the device revoked (keeping the first revocation time); None if it is unknown."""
    row = conn.execute(
        "UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s"
        " RETURNING revoked_at",
        (device_id,),
    ).fetchone()
    return cast(datetime, row[0]) if row else None


@dataclass(frozen=True, slots=True)
class DeviceListing:
    device_id: str
    owner_email: str
    vin: str | None
    vehicle_id: UUID | None
    created_at: datetime
    revoked_at: datetime | None


def list_devices(conn: psycopg.Connection[tuple[object, ...]]) -> list[DeviceListing]:
    rows = conn.execute(
        "SELECT d.id, o.email, v.vin, d.vehicle_id, d.created_at, d.revoked_at"
        " FROM devices d JOIN drivers o ON o.id = d.owner_id"
        " LEFT JOIN vehicles v ON v.id = d.vehicle_id ORDER BY d.created_at, d.id"
    ).fetchall()
    return [DeviceListing(str(r[0]), str(r[1]), cast(str | None, r[2]),
                          cast(UUID | None, r[3]), cast(datetime, r[4]),
                          cast(datetime | None, r[5])) for r in rows]


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

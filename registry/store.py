"""The registry's tables (migration 0002): drivers, their vehicles and the devices that speak
for them. Plain SQL on a connection the caller holds; the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import cast
from uuid import UUID

import psycopg

from registry.errors import ProvisioningError
from registry.records import BrokerPassword, DeviceListing

Connection = psycopg.Connection[tuple[object, ...]]


def add_driver(conn: Connection, email: str) -> UUID:
    """The driver with this e-mail address, created if new."""
    row = conn.execute(
        "INSERT INTO drivers (email) VALUES (%s)"
        " ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id",
        (email,),
    ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def add_vehicle(conn: Connection, owner_id: UUID, *, vin: str | None = None, make: str | None = None,
                model: str | None = None, year: int | None = None) -> UUID:
    row = conn.execute(
        "INSERT INTO vehicles (owner_id, vin, make, model, year) VALUES (%s, %s, %s, %s, %s)"
        " RETURNING id",
        (owner_id, vin, make, model, year),
    ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def find_or_add_vehicle(conn: Connection, owner_id: UUID, vin: str) -> UUID:
    """The owner's vehicle with this VIN, created if new; a VIN owned by another driver is
    refused (ProvisioningError)."""
    row = conn.execute("SELECT id, owner_id FROM vehicles WHERE vin = %s", (vin,)).fetchone()
    if row is None:
        return add_vehicle(conn, owner_id, vin=vin)
    if UUID(str(row[1])) != owner_id:
        raise ProvisioningError(f"vehicle {vin} belongs to another driver")
    return UUID(str(row[0]))


def add_device(conn: Connection, device_id: str, public_key: bytes, owner_id: UUID,
               vehicle_id: UUID | None, password: BrokerPassword | None = None) -> None:
    conn.execute(
        "INSERT INTO devices (id, public_key, owner_id, vehicle_id, mqtt_password_hash,"
        " mqtt_password_salt) VALUES (%s, %s, %s, %s, %s, %s)",
        (device_id, public_key, owner_id, vehicle_id,
         password.hash_hex if password else None, password.salt if password else None),
    )


def device_exists(conn: Connection, device_id: str, public_key: bytes) -> bool:
    return conn.execute("SELECT 1 FROM devices WHERE id = %s OR public_key = %s",
                        (device_id, public_key)).fetchone() is not None


def revoke_device(conn: Connection, device_id: str) -> datetime | None:
    """Mark the device revoked (keeping the first revocation time); None if it is unknown."""
    row = conn.execute(
        "UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s"
        " RETURNING revoked_at",
        (device_id,),
    ).fetchone()
    return cast(datetime, row[0]) if row else None


def vehicle_of_device(conn: Connection, device_id: str) -> UUID | None:
    row = conn.execute("SELECT vehicle_id FROM devices WHERE id = %s", (device_id,)).fetchone()
    return None if row is None or row[0] is None else UUID(str(row[0]))


def list_devices(conn: Connection) -> list[DeviceListing]:
    rows = conn.execute(
        "SELECT d.id, o.email, v.vin, d.vehicle_id, d.created_at, d.revoked_at"
        " FROM devices d JOIN drivers o ON o.id = d.owner_id"
        " LEFT JOIN vehicles v ON v.id = d.vehicle_id ORDER BY d.created_at, d.id"
    ).fetchall()
    return [DeviceListing(str(r[0]), str(r[1]), cast(str | None, r[2]),
                          cast(UUID | None, r[3]), cast(datetime, r[4]),
                          cast(datetime | None, r[5])) for r in rows]


def enroll_vehicle(conn: Connection, *, email: str, device_id: str, public_key: bytes,
                   vin: str | None = None, make: str | None = None, model: str | None = None,
                   year: int | None = None) -> UUID:
    """Driver (created if new), vehicle, and a device paired to it, with no broker identity
    (tests and tools that write events straight to the database); returns the vehicle id."""
    driver = add_driver(conn, email)
    vehicle = add_vehicle(conn, driver, vin=vin, make=make, model=model, year=year)
    add_device(conn, device_id, public_key, driver, vehicle)
    return vehicle


def driver_by_email(conn: Connection, email: str) -> UUID | None:
    row = conn.execute("SELECT id FROM drivers WHERE email = %s", (email.strip(),)).fetchone()
    return None if row is None else cast(UUID, row[0])


def vehicle_by_vin(conn: Connection, vin: str) -> tuple[UUID, UUID] | None:
    """(vehicle id, owner id) of the vehicle with this VIN."""
    row = conn.execute("SELECT id, owner_id FROM vehicles WHERE vin = %s", (vin,)).fetchone()
    return None if row is None else (cast(UUID, row[0]), cast(UUID, row[1]))


def vehicles_of(conn: Connection, owner_id: UUID) -> list[UUID]:
    rows = conn.execute("SELECT id FROM vehicles WHERE owner_id = %s ORDER BY created_at, id",
                        (owner_id,)).fetchall()
    return [cast(UUID, r[0]) for r in rows]

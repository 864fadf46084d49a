"""Device provisioning: the registry row, the broker identity and the agent's config, together.

The database is the source of truth: a device is registered in one transaction that commits
only after the broker accepted its identity; revocation is committed to the database first
(ingest refuses the device's events from its next batch) and then disables the broker identity
(which disconnects the device at once).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker_config import dynsec
from broker_config.admin import BrokerAdmin, BrokerAdminError
from ingest.registry import (
    BrokerPassword,
    RegistryError,
    add_device,
    add_driver,
    find_or_add_vehicle,
    revoke_device,
)
from protocol.agent_config import AgentConfig, DeviceSection, dump_agent_config
from protocol.endpoint import MqttEndpoint
from protocol.signing import device_id_for
from simulators.fleet import SimCar

#: PBKDF2 rounds of the database's copy of broker passwords (migration 0004).
DB_PBKDF2_ITERATIONS = 10_000


class ProvisioningError(Exception):
    """A registration or revocation that could not be carried out; the message says why."""


def broker_password_record(password: str, salt: str) -> BrokerPassword:
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt.encode(), DB_PBKDF2_ITERATIONS)
    return BrokerPassword(digest.hex(), salt)


@dataclass(frozen=True, slots=True)
class ProvisionedDevice:
    device_id: str
    owner_email: str
    public_key: bytes
    vehicle_id: UUID | None
    vin: str | None
    credential: dynsec.Credential


def provision_device(
    conn: psycopg.Connection[tuple[object, ...]],
    admin: BrokerAdmin,
    *,
    email: str,
    public_key: bytes,
    vin: str | None = None,
) -> ProvisionedDevice:
    """Register a device for the driver ``email`` (created if new), paired with the vehicle
    ``vin`` (created if new), and give it a broker identity allowed only its own topics."""
    device_id = device_id_for(public_key)
    credential = dynsec.Credential.generate(device_id)
    record = broker_password_record(credential.password, secrets.token_urlsafe(18))
    broker_done = False
    try:
        with conn.transaction():
            if conn.execute("SELECT 1 FROM devices WHERE id = %s OR public_key = %s",
                            (device_id, public_key)).fetchone():
                raise ProvisioningError(f"a device with this public key ({device_id}) is "
                                        "already registered")
            owner = add_driver(conn, email)
            vehicle = find_or_add_vehicle(conn, owner, vin) if vin else None
            add_device(conn, device_id, public_key, owner, vehicle, record)
            admin.execute(dynsec.provision_device(device_id, credential.password))
            broker_done = True
    except psycopg.errors.CheckViolation as exc:
        raise ProvisioningError(f"refused by the registry: {exc.diag.message_primary}") from exc
    except RegistryError as exc:
        raise ProvisioningError(str(exc)) from exc
    except BrokerAdminError as exc:
        raise ProvisioningError(f"nothing registered: {exc}") from exc
    except psycopg.Error:
        if broker_done:  # the commit failed after the broker accepted: take the identity back
            admin.execute(dynsec.revoke_device(device_id))
        raise
    return ProvisionedDevice(device_id, email, public_key, vehicle, vin, credential)


def provision_fleet(conn: psycopg.Connection[tuple[object, ...]], admin: BrokerAdmin,
                    cars: Sequence[SimCar], email: Callable[[int], str]) -> list[UUID]:
    """Provision simulated cars, each paired with its vehicle (its VIN), driver ``email(i)``;
    each car keeps its broker password, as a real device keeps its agent config."""
    vehicles = []
    for i, car in enumerate(cars):
        device = provision_device(conn, admin, email=email(i), public_key=car.public_key,
                                  vin=car.vin)
        car.mqtt_password = device.credential.password
        assert device.vehicle_id is not None  # paired: it was given a VIN
        vehicles.append(device.vehicle_id)
    return vehicles


def revoke(conn: psycopg.Connection[tuple[object, ...]], admin: BrokerAdmin,
           device_id: str) -> None:
    with conn.transaction():
        if revoke_device(conn, device_id) is None:
            raise ProvisioningError(f"no device {device_id!r} is registered")
    try:
        admin.execute(dynsec.revoke_device(device_id))
    except BrokerAdminError as exc:
        raise ProvisioningError(
            f"{device_id} is revoked in the registry (ingest refuses its events) but the broker "
            f"did not disable it: {exc}; run the revocation again"
        ) from exc


def write_agent_files(
    directory: Path,
    device: ProvisionedDevice,
    broker: MqttEndpoint,
    private_key: Ed25519PrivateKey | None,
) -> Path:
    """Write ``agent.toml`` (and ``device.key`` when we made the key) into ``directory``;
    both 0600, as they hold secrets. Returns the config's path."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / "device.key"
    if private_key is not None:
        _write_private(key_path, private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    endpoint = broker.model_copy(update={"username": device.credential.username,
                                         "password": device.credential.password})
    config = AgentConfig(device=DeviceSection(id=device.device_id, private_key_file=key_path),
                         broker=endpoint, vehicle_vin=device.vin)
    config_path = directory / "agent.toml"
    _write_private(config_path, dump_agent_config(config).encode())
    return config_path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)

"""Device provisioning: the registry row, the broker identity and the agent's config, together.

The database is the source of truth: a device is registered in one transaction that commits
only after the broker accepted its identity; revocation is committed to the database first
(ingest refuses the device's events from its next batch) and then disables the broker identity
(which disconnects the device at once).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker_config import dynsec
from broker_config.admin import BrokerAdmin
from broker_config.errors import BrokerConfigError
from protocol.agent_config import AgentConfig, DeviceSection, write_agent_config, write_private
from protocol.endpoint import MqttEndpoint
from protocol.signing import device_id_for
from registry.errors import ProvisioningError
from registry.identity import check_email, check_vin
from registry.records import BrokerPassword
from registry.store import add_device, add_driver, device_exists, find_or_add_vehicle, revoke_device

#: PBKDF2 rounds of the database's copy of broker passwords (migration 0004).
DB_PBKDF2_ITERATIONS = 10_000


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


@dataclass(frozen=True, slots=True)
class DeviceRequest:
    """One device to register: its own public key, its driver, the vehicle it reads (if known)."""

    public_key: bytes
    email: str
    vin: str | None = None


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
    email = check_email(email)
    vin = check_vin(vin) if vin is not None else None
    device_id = device_id_for(public_key)
    credential = dynsec.Credential.generate(device_id)
    record = broker_password_record(credential.password, secrets.token_urlsafe(18))
    broker_done = False
    try:
        with conn.transaction():
            if device_exists(conn, device_id, public_key):
                raise ProvisioningError(f"a device with this public key ({device_id}) is "
                                        "already registered")
            owner = add_driver(conn, email)
            vehicle = find_or_add_vehicle(conn, owner, vin) if vin else None
            add_device(conn, device_id, public_key, owner, vehicle, record)
            admin.execute(dynsec.provision_device(device_id, credential.password))
            broker_done = True
    except psycopg.errors.CheckViolation as exc:
        raise ProvisioningError(f"refused by the registry: {exc.diag.message_primary}") from exc
    except BrokerConfigError as exc:
        raise ProvisioningError(f"nothing registered: {exc}") from exc
    except psycopg.Error:
        if broker_done:  # the commit failed after the broker accepted: take the identity back
            admin.execute(dynsec.revoke_device(device_id))
        raise
    return ProvisionedDevice(device_id, email, public_key, vehicle, vin, credential)


def provision_devices(conn: psycopg.Connection[tuple[object, ...]], admin: BrokerAdmin,
                      requests: Iterable[DeviceRequest]) -> list[ProvisionedDevice]:
    return [provision_device(conn, admin, email=r.email, public_key=r.public_key, vin=r.vin)
            for r in requests]


def revoke(conn: psycopg.Connection[tuple[object, ...]], admin: BrokerAdmin, device_id: str) -> None:
    with conn.transaction():
        if revoke_device(conn, device_id) is None:
            raise ProvisioningError(f"no device {device_id!r} is registered")
    try:
        admin.execute(dynsec.revoke_device(device_id))
    except BrokerConfigError as exc:
        raise ProvisioningError(
            f"{device_id} is revoked in the registry (ingest refuses its events) but the broker "
            f"did not disable it: {exc}; run the revocation again"
        ) from exc


def agent_config_for(device: ProvisionedDevice, broker: MqttEndpoint, key_file: Path) -> AgentConfig:
    """The agent config of a registered device: its id and key, the broker with its credentials."""
    endpoint = broker.model_copy(update={"username": device.credential.username,
                                         "password": device.credential.password})
    return AgentConfig(device=DeviceSection(id=device.device_id, private_key_file=key_file),
                       broker=endpoint, vehicle_vin=device.vin)


def write_agent_files(
    directory: Path,
    device: ProvisionedDevice,
    broker: MqttEndpoint,
    private_key: Ed25519PrivateKey | None,
) -> Path:
    """Write ``agent.toml`` (and ``device.key`` when we made the key) into ``directory`` (0700);
    both files 0600, as they hold secrets. Returns the config's path."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path = directory / "device.key"
    if private_key is not None:
        write_private(key_path, private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    config_path = directory / "agent.toml"
    write_agent_config(config_path, agent_config_for(device, broker, key_path))
    return config_path

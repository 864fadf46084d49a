"""Registering simulated cars and in-car agents on a stack, the way `motus device register`
does: registry rows and broker identities, and each agent's config written from its model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker_config.admin import BrokerAdmin
from connections.database import connect
from connections.settings import DatabaseSettings
from device_agent.config import AgentFile, SourcesSection
from protocol.agent_config import AgentConfig, write_agent_config
from protocol.signing import public_key_bytes
from registry.provisioning import (
    DeviceRequest,
    ProvisionedDevice,
    agent_config_for,
    provision_device,
    provision_devices,
    write_agent_files,
)
from simulators.fleet import SimCar
from stack.local import StackInfo

Connection = psycopg.Connection[tuple[object, ...]]


def register_cars(conn: Connection, admin: BrokerAdmin, cars: Sequence[SimCar],
                  email: Callable[[int], str]) -> list[UUID]:
    """Provision simulated cars, each paired with its vehicle (its VIN), driver ``email(i)``;
    each car keeps its broker password, as a real device keeps its agent config."""
    devices = provision_devices(conn, admin, [DeviceRequest(car.public_key, email(i), car.vin)
                                              for i, car in enumerate(cars)])
    vehicles = []
    for car, device in zip(cars, devices, strict=True):
        car.mqtt_password = device.credential.password
        assert device.vehicle_id is not None  # paired: it was given a VIN
        vehicles.append(device.vehicle_id)
    return vehicles


def register_cars_on(info: StackInfo, cars: Sequence[SimCar], email: Callable[[int], str],
                     database_url: str | None = None) -> list[UUID]:
    """``register_cars`` against the stack's database (or ``database_url`` on its server)."""
    settings = DatabaseSettings(database_url=database_url or info.database_url)
    with connect(settings) as conn, BrokerAdmin(info.admin_endpoint) as admin:
        return register_cars(conn, admin, cars, email)


@dataclass(frozen=True)
class AgentDevice:
    """A registered device for the in-car agent: its key and its registered config."""

    device: ProvisionedDevice
    key: Ed25519PrivateKey
    base: AgentConfig
    directory: Path

    @property
    def device_id(self) -> str:
        return self.device.device_id

    def write(self, sources: SourcesSection, name: str = "agent.toml", **sections: Any) -> Path:
        """The agent's whole config (the registered one plus ``sources`` and any other section
        of ``AgentFile``: spool, publish, log_level, a changed broker) written from its model."""
        config = AgentFile.model_validate({**self.base.model_dump(), "sources": sources, **sections})
        path = self.directory / name
        write_agent_config(path, config)
        return path


def provision_agent(info: StackInfo, directory: Path, email: str, vin: str, *, tls: bool = True,
                    database_url: str | None = None) -> AgentDevice:
    """Register a device as `motus device register` does (its agent.toml and device.key in
    ``directory``) against the stack, or ``database_url`` on the stack's server."""
    key = Ed25519PrivateKey.generate()
    settings = DatabaseSettings(database_url=database_url or info.database_url)
    with connect(settings) as conn, BrokerAdmin(info.admin_endpoint) as admin:
        device = provision_device(conn, admin, email=email, public_key=public_key_bytes(key), vin=vin)
    broker = info.device_endpoint(device.device_id, device.credential.password, tls=tls)
    write_agent_files(directory, device, broker, key)
    return AgentDevice(device, key, agent_config_for(device, broker, directory / "device.key"), directory)

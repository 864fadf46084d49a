"""The in-car agent's config file (TOML), written at provisioning (`motus device register`).

A contract between the network and the device like the wire format: the agent reads exactly
this. Relative paths are relative to the config file's directory.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar, overload

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.endpoint import MqttEndpoint
from protocol.topics import DEVICE_ID_PATTERN


class DeviceSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=f"^{DEVICE_ID_PATTERN}$")
    #: PKCS#8 PEM Ed25519 private key that signs the events (protocol.md, "Signing").
    private_key_file: Path


class AgentConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    device: DeviceSection
    broker: MqttEndpoint
    #: The vehicle the device is paired with, when known at registration.
    vehicle_vin: str | None = None


C = TypeVar("C", bound=AgentConfig)


class AgentConfigError(Exception):
    """The agent config file is missing, is not TOML, or does not fit the schema."""


def dump_agent_config(config: AgentConfig) -> str:
    return tomli_w.dumps(config.model_dump(mode="json", exclude_none=True))


@overload
def load_agent_config(path: Path) -> AgentConfig: ...
@overload
def load_agent_config(path: Path, model: type[C]) -> C: ...
def load_agent_config(path: Path, model: type[AgentConfig] = AgentConfig) -> AgentConfig:
    """Read and check the file; ``model`` may extend the schema (the agent adds its sources)."""
    try:
        document = tomllib.loads(path.read_text("utf-8"))
        config = model.model_validate(document)
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise AgentConfigError(f"{path}: {exc}") from exc
    base = path.parent
    return config.model_copy(update={
        "device": config.device.model_copy(
            update={"private_key_file": base / config.device.private_key_file}),
        "broker": config.broker.model_copy(
            update={"ca_file": base / config.broker.ca_file if config.broker.ca_file else None}),
    })

"""The in-car agent's config file (TOML), written at provisioning (`motus device register`).

A contract between the network and the device like the wire format: the agent reads exactly
this. Relative paths are relative to the config file's directory.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TypeVar, overload

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.endpoint import MqttEndpoint
from protocol.errors import ProtocolError
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


class AgentConfigError(ProtocolError):
    """The agent config file is missing, is not TOML, or does not fit the schema."""


def describe_invalid(error: ValidationError) -> str:
    """One line per broken rule, named by its place in the file (``sources.elm327.port: ...``)."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(the file)"
        lines.append(f"  {where}: {problem['msg']}")
    return "\n".join(lines)


def dump_agent_config(config: AgentConfig) -> str:
    return tomli_w.dumps(config.model_dump(mode="json", exclude_none=True))


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (0600), also when it existed with wider rights."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def write_agent_config(path: Path, config: AgentConfig) -> None:
    """Write ``config`` (or an extension of it, such as the agent's whole file) as TOML, 0600:
    it holds the broker password."""
    write_private(path, dump_agent_config(config).encode())


@overload
def load_agent_config(path: Path) -> AgentConfig: ...
@overload
def load_agent_config(path: Path, model: type[C]) -> C: ...
def load_agent_config(path: Path, model: type[AgentConfig] = AgentConfig) -> AgentConfig:
    """Read and check the file; ``model`` may extend the schema (the agent adds its sources)."""
    try:
        document = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise AgentConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise AgentConfigError(f"{path} is not valid TOML: {exc}") from exc
    try:
        config = model.model_validate(document)
    except ValidationError as exc:
        raise AgentConfigError(f"{path} does not fit the agent's config (docs/agent.md):\n"
                               f"{describe_invalid(exc)}") from exc
    base = path.parent
    return config.model_copy(update={
        "device": config.device.model_copy(
            update={"private_key_file": base / config.device.private_key_file}),
        "broker": config.broker.model_copy(
            update={"ca_file": base / config.broker.ca_file if config.broker.ca_file else None}),
    })

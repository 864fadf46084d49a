"""Settings of provisioning (`motus device ...`, `motus sim fleet`): MOTUS_ variables, which
`motus stack env` prints for the local stack."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from connections.settings import BrokerAdminSettings, DatabaseSettings, DeviceBrokerSettings


def _config_home() -> Path:
    """$XDG_CONFIG_HOME, else ~/.config (XDG Base Directory Specification)."""
    configured = os.environ.get("XDG_CONFIG_HOME")
    return Path(configured) if configured else Path.home() / ".config"


class ProvisioningSettings(DatabaseSettings, BrokerAdminSettings, DeviceBrokerSettings):
    """The database, the broker admin identity, and where devices connect."""

    #: Where `motus device register` writes each device's agent.toml and key (secrets, 0600):
    #: outside any work tree, so they are never committed by accident.
    devices_dir: Path = Field(default_factory=lambda: _config_home() / "motus" / "devices")

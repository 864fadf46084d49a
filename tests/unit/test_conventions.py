"""Conventions that hold across packages (docs/architecture.md): one error base per package."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

#: Each package's error base; None for a package that defines no errors of its own yet.
ERROR_BASES = {
    "protocol": "protocol.errors.ProtocolError",
    "connections": "connections.errors.ConnectionsError",
    "device_agent": "device_agent.errors.AgentError",
    "broker_config": "broker_config.errors.BrokerConfigError",
    "migrations": "migrations.runner.MigrationError",
    "registry": "registry.errors.RegistryError",
    "ingest": "ingest.errors.IngestError",
    "stack": "stack.errors.StackError",
    "rewards": "rewards.errors.RewardsError",
    "simulators": None,
    "movement": None,
    "api": "api.errors.ApiError",
}


def modules_of(package: str) -> list[object]:
    root = importlib.import_module(package)
    names = [package] + [f"{package}.{m.name}" for m in pkgutil.walk_packages(root.__path__)]
    return [importlib.import_module(name) for name in names]


def exceptions_defined_in(package: str) -> list[type[BaseException]]:
    found = []
    for module in modules_of(package):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:  # type: ignore[attr-defined]
                found.append(cls)
    return found


@pytest.mark.parametrize("package", sorted(ERROR_BASES))
def test_every_error_a_package_defines_derives_from_its_base(package):
    defined = exceptions_defined_in(package)
    base_path = ERROR_BASES[package]
    if base_path is None:
        assert defined == [], f"{package} defines errors: give it an error base in its errors.py"
        return
    module, name = base_path.rsplit(".", 1)
    base = getattr(importlib.import_module(module), name)
    assert base in defined
    strays = [f"{cls.__module__}.{cls.__qualname__}" for cls in defined if not issubclass(cls, base)]
    assert strays == [], f"not derived from {base_path}"


def test_every_setting_the_local_stack_hands_out_is_read_by_a_service(monkeypatch):
    """`motus stack env` prints MOTUS_ variables; each must be a field of some service's settings
    (composed from connections.settings), and each service takes its part from them."""
    from api.settings import ApiSettings
    from ingest.settings import IngestSettings
    from registry.settings import ProvisioningSettings
    from rewards.settings import RewardsSettings
    from stack.local import StackInfo

    info = StackInfo("/tmp/stack", 15432, 11883, 18883, 18884, mosquitto_pid=1, timescaledb=False,
                     admin_password="admin-secret", ingest_password="ingest-secret")
    read = {f"MOTUS_{name.upper()}" for cls in (ApiSettings, IngestSettings, ProvisioningSettings,
                                                         RewardsSettings)
            for name in cls.model_fields}
    assert set(info.env()) <= read
    for key, value in info.env().items():
        monkeypatch.setenv(key, value)
    ingest, api, provisioning = IngestSettings(), ApiSettings(), ProvisioningSettings()
    assert ingest.database_url == api.database_url == provisioning.database_url == info.database_url
    assert ingest.mqtt_endpoint().password == "ingest-secret" and ingest.mqtt_port == 11883
    assert provisioning.admin_endpoint().password == "admin-secret"
    assert provisioning.admin_endpoint().port == 11883
    assert provisioning.device_endpoint().port == 18883 and provisioning.device_endpoint().tls
    assert RewardsSettings().network_key_file == Path("/tmp/stack/network.key")

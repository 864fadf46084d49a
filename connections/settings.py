"""Settings pieces shared by the services (pydantic-settings, ``MOTUS_`` environment variables).

Each service composes its own settings class from these (``class IngestSettings(DatabaseSettings,
BrokerSettings)``), builds it once in its ``main`` and passes it down; core code never reads the
environment. `motus stack env` prints every variable these read, pointing at the local stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from protocol.endpoint import MqttEndpoint

#: What to run when the settings point nowhere: the local stack prints them all.
LOCAL_STACK_HINT = 'for a local stack run `motus stack up`, then `eval "$(motus stack env)"`'


class MotusSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOTUS_")

    def is_default(self, field: str) -> bool:
        """True when ``field`` was not set (by the environment or by the caller)."""
        return field not in self.model_fields_set


class DatabaseSettings(MotusSettings):
    #: libpq connection URI of the network's database.
    database_url: str = "postgresql://motus@127.0.0.1:5432/motus"


class BrokerSettings(MotusSettings):
    """The broker's service listener, where the network's services connect."""

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: str | None = Field(default=None, repr=False)
    mqtt_tls: bool = False
    #: With TLS, verify the broker against this CA; unset: the system's trust store.
    mqtt_ca_file: Path | None = None

    def mqtt_endpoint(self) -> MqttEndpoint:
        return MqttEndpoint(host=self.mqtt_host, port=self.mqtt_port, tls=self.mqtt_tls,
                            ca_file=self.mqtt_ca_file,
                            username=self.mqtt_username, password=self.mqtt_password)


class BrokerAdminSettings(BrokerSettings):
    """The broker admin identity (dynamic security), on the service listener."""

    broker_admin_username: str = "motus-admin"
    broker_admin_password: str | None = Field(default=None, repr=False)

    def admin_endpoint(self) -> MqttEndpoint:
        return self.mqtt_endpoint().model_copy(update={
            "username": self.broker_admin_username, "password": self.broker_admin_password})


class DeviceBrokerSettings(MotusSettings):
    """Where devices connect (written into their agent config): the TLS listener."""

    device_mqtt_host: str = "127.0.0.1"
    device_mqtt_port: int = Field(default=8883, ge=1, le=65535)
    device_mqtt_transport: Literal["tcp", "websockets"] = "tcp"
    device_mqtt_tls: bool = True
    #: The CA devices verify the broker with; unset: their system trust store.
    device_mqtt_ca_file: Path | None = None

    def device_endpoint(self) -> MqttEndpoint:
        return MqttEndpoint(host=self.device_mqtt_host, port=self.device_mqtt_port,
                            transport=self.device_mqtt_transport, tls=self.device_mqtt_tls,
                            ca_file=self.device_mqtt_ca_file)

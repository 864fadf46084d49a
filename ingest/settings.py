"""Ingest settings (MOTUS_ environment variables), built in ``main`` and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from protocol.endpoint import MqttEndpoint


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOTUS_")

    database_url: str = "postgresql://motus@127.0.0.1:5432/motus"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    #: The ingest identity on the broker (broker_config: role motus-ingest).
    mqtt_username: str = "motus-ingest"
    mqtt_password: str | None = Field(default=None, repr=False)
    mqtt_tls: bool = False
    #: With TLS, verify the broker against this CA; unset: the system's trust store.
    mqtt_ca_file: Path | None = None
    #: Members of one shared-subscription group split the devices' messages between them.
    ingest_group: str = "ingest"
    ingest_client_id: str = "motus-ingest-1"
    #: A batch closes at this many events or after this long, whichever comes first.
    ingest_batch_events: int = Field(default=1000, ge=1, le=10000)
    ingest_batch_seconds: float = Field(default=0.2, gt=0, le=10)
    #: How often one of the workers creates partitions ahead, refreshes the hourly rollups of
    #: closed hours and drops expired partitions.
    ingest_housekeeping_seconds: float = Field(default=60.0, gt=0)
    #: Serve Prometheus metrics on this port (0: off).
    ingest_metrics_port: int = 0

    def mqtt_endpoint(self) -> MqttEndpoint:
        return MqttEndpoint(host=self.mqtt_host, port=self.mqtt_port, tls=self.mqtt_tls,
                            ca_file=self.mqtt_ca_file,
                            username=self.mqtt_username, password=self.mqtt_password)

"""Ingest settings (MOTUS_ environment variables), built in ``main`` and passed down."""

from __future__ import annotations

from pydantic import Field

from connections.settings import BrokerSettings, DatabaseSettings


class IngestSettings(DatabaseSettings, BrokerSettings):
    #: The ingest identity on the broker (broker_config: role motus-ingest).
    mqtt_username: str | None = "motus-ingest"
    #: Members of one shared-subscription group split the devices' messages between them.
    ingest_group: str = "ingest"
    ingest_client_id: str = "motus-ingest-1"
    #: A batch closes at this many events or after this long, whichever comes first.
    ingest_batch_events: int = Field(default=1000, ge=1, le=10000)
    ingest_batch_seconds: float = Field(default=0.2, gt=0, le=10)
    #: How often one of the workers creates partitions ahead, refreshes the hourly rollups of
    #: closed hours and drops expired partitions.
    ingest_housekeeping_seconds: float = Field(default=60.0, gt=0)
    #: Serve Prometheus metrics (/metrics) and readiness (/readyz) on this port (0: off).
    ingest_metrics_port: int = Field(default=0, ge=0, le=65535)

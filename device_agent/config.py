"""agent.toml: the file `motus device register` writes (``protocol.agent_config``) plus what the
agent reads from the car and how it keeps and sends it. docs/agent.md documents every key."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from device_agent.obd import pid_for_signal
from protocol.agent_config import AgentConfig, load_agent_config
from protocol.catalog import load_catalog

Rates = dict[str, float]


def _check_obd_rates(rates: Rates) -> Rates:
    for name, rate in rates.items():
        try:
            pid_for_signal(name)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        if not 0 < rate <= 50:
            raise ValueError(f"{name}: rate {rate} Hz is outside 0 < rate <= 50")
    return rates


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SpoolSection(Section):
    path: Path = Path("spool.sqlite")
    #: Bound on the spooled bytes; past it the oldest events are dropped and counted.
    max_mb: float = Field(default=512, gt=0)
    #: fsync every commit (survives power cuts; SD cards are slower with it).
    durable: bool = True


class PublishSection(Section):
    #: Readings gathered during this interval travel in one event.
    event_interval_s: float = Field(default=1.0, ge=0.05, le=60)
    #: Most events at a time that no receipt settled yet (with the broker, or acknowledged by
    #: it and waiting for their receipt).
    window: int = Field(default=500, ge=1, le=10_000)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    #: Keep events until the network's receipt settles them (docs/protocol.md, "Receipts");
    #: false: forget them once the broker acknowledged them (a network without receipts).
    receipts: bool = True
    #: How long an acknowledged event waits for its receipt before it is sent again; doubled
    #: after each round without a receipt, up to receipt_wait_max_s.
    receipt_wait_s: float = Field(default=10.0, gt=0)
    receipt_wait_max_s: float = Field(default=60.0, gt=0)


class Elm327Section(Section):
    port: str
    #: 0: detect the adapter's rate.
    baudrate: int = Field(default=0, ge=0)
    #: Catalog signal -> polls per second.
    signals: Rates
    dtc_interval_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=2.0, gt=0)

    _rates = field_validator("signals")(_check_obd_rates)


class DbcSignal(Section):
    message: str
    signal: str
    name: str
    scale: float = 1.0
    offset: float = 0.0
    rate_hz: float = Field(default=1.0, gt=0, le=100)

    @field_validator("name")
    @classmethod
    def _in_catalog(cls, name: str) -> str:
        if name not in load_catalog():
            raise ValueError(f"{name!r} is not in the signal catalog")
        return name


class CanSection(Section):
    #: python-can interface and channel: socketcan/can0 on a Pi with a CAN hat.
    interface: str = "socketcan"
    channel: str = "can0"
    bitrate: int | None = None
    #: OBD-II over ISO-TP: catalog signal -> polls per second (empty: passive only).
    signals: Rates = Field(default_factory=dict)
    dtc_interval_s: float = Field(default=60.0, gt=0)
    dbc_file: Path | None = None
    dbc_signals: list[DbcSignal] = Field(default_factory=list)

    _rates = field_validator("signals")(_check_obd_rates)

    @model_validator(mode="after")
    def _something_to_read(self) -> CanSection:
        if not self.signals and not self.dbc_signals:
            raise ValueError("set OBD-II signals to poll, dbc_signals to decode, or both")
        if self.dbc_signals and self.dbc_file is None:
            raise ValueError("dbc_signals need a dbc_file")
        return self


class GpsSection(Section):
    port: str
    baudrate: int = Field(default=9600, gt=0)
    #: Report the receiver's ground speed as `speed` (for cars read without OBD-II).
    speed_from_gps: bool = False


class PhoneSection(Section):
    host: str = "0.0.0.0"
    port: int = Field(default=8090, ge=0, le=65535)
    #: The secret in the URL phones upload to (at least 16 characters).
    token: str = Field(min_length=16)


class SourcesSection(Section):
    elm327: Elm327Section | None = None
    can: CanSection | None = None
    gps: GpsSection | None = None
    phone: PhoneSection | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> SourcesSection:
        if not any((self.elm327, self.can, self.gps, self.phone)):
            raise ValueError("configure at least one source: elm327, can, gps or phone")
        return self


#: What `motus agent run` says when the file `motus device register` wrote has no source yet.
NO_SOURCES = ("no source to read: add a [sources.elm327], [sources.can], [sources.gps] or "
              "[sources.phone] section to the config (docs/agent.md, \"Sources\")")


class AgentFile(AgentConfig):
    spool: SpoolSection = SpoolSection()
    publish: PublishSection = PublishSection()
    #: None in the file `motus device register` writes: `motus agent status` reads it as it is,
    #: `motus agent run` asks for a source.
    sources: SourcesSection | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def load_agent_file(path: Path) -> AgentFile:
    """agent.toml with its relative paths resolved against the file's directory."""
    config = load_agent_config(path, AgentFile)
    base = path.parent
    sources = config.sources
    if sources is not None and sources.can is not None and sources.can.dbc_file is not None:
        can = sources.can.model_copy(update={"dbc_file": base / sources.can.dbc_file})
        sources = sources.model_copy(update={"can": can})
    return config.model_copy(update={
        "spool": config.spool.model_copy(update={"path": base / config.spool.path}),
        "sources": sources,
    })

"""Assembles the agent from agent.toml and runs it until told to stop."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from device_agent.agent import DurableSink, Pump, ReadingQueue, ReceiptWait
from device_agent.backoff import Backoff
from device_agent.config import NO_SOURCES, AgentFile, SourcesSection
from device_agent.errors import AgentError
from device_agent.events import EventBuilder
from device_agent.link import BrokerLink
from device_agent.spool import Spool
from protocol.signing import private_key_from_pem

log = logging.getLogger(__name__)
AGENT_VERSION = "1"


class Source(Protocol):
    name: str

    def run(self, stop: threading.Event) -> None: ...


def new_boot_id() -> str:
    """Unique per start: hex seconds then random bits, so boots sort by time for people."""
    return f"{int(time.time()):x}{secrets.token_hex(4)}"


@dataclass
class VehicleIdentity:
    configured_vin: str | None
    read_vin: str | None = None
    changed: threading.Event = field(default_factory=threading.Event)

    def seen(self, vin: str) -> None:
        if self.read_vin != vin:
            self.read_vin = vin
            self.changed.set()
            if self.configured_vin and vin != self.configured_vin:
                log.warning("the car reports VIN %s, but this device is paired with %s",
                            vin, self.configured_vin)
            else:
                log.info("the car reports VIN %s", vin)


@dataclass
class AgentRuntime:
    config: AgentFile
    spool: Spool
    pump: Pump
    sources: list[Source]
    vehicle: VehicleIdentity
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start_sources(self) -> None:
        for source in self.sources:
            thread = threading.Thread(target=source.run, args=(self.stop,), name=source.name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def run(self) -> None:
        """Blocks until ``stop`` is set; then flushes readings and says offline."""
        self.start_sources()
        try:
            self.pump.run(self.stop)
        finally:
            self.stop.set()
            for thread in self.threads:
                thread.join(timeout=5)
            self.pump.finish()
            self.spool.close()


def build_agent(config: AgentFile) -> AgentRuntime:
    if config.sources is None:
        raise AgentError(NO_SOURCES)
    try:
        key = private_key_from_pem(config.device.private_key_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise AgentError(f"cannot read the device key {config.device.private_key_file}: {exc}") from exc
    spool = Spool(config.spool.path, max_bytes=int(config.spool.max_mb * 1024 * 1024),
                  durable=config.spool.durable)
    boot_id = new_boot_id()
    builder = EventBuilder(config.device.id, key, boot_id)
    vehicle = VehicleIdentity(config.vehicle_vin)
    readings = ReadingQueue()

    def status() -> dict[str, Any]:
        details: dict[str, Any] = {"agent": AGENT_VERSION, "boot": boot_id}
        if vehicle.read_vin:
            details["vin"] = vehicle.read_vin
        return details

    publish = config.publish
    link = BrokerLink(config.broker, config.device.id,
                      backoff=Backoff(publish.backoff_initial_s, publish.backoff_max_s), status=status,
                      receipts=publish.receipts)
    pump = Pump(spool=spool, link=link, builder=builder, readings=readings,
                event_interval_s=publish.event_interval_s, window=publish.window,
                status_changed=vehicle.changed,
                receipt_wait=ReceiptWait(publish.receipt_wait_s, publish.receipt_wait_max_s))
    sources = make_sources(config.sources, readings, DurableSink(builder, spool), vehicle)
    log.info("device %s boot %s: sources %s; spool %s", config.device.id, boot_id,
             ", ".join(s.name for s in sources), config.spool.path)
    return AgentRuntime(config, spool, pump, sources, vehicle)


def make_sources(config: SourcesSection, readings: ReadingQueue, sink: DurableSink,
                 vehicle: VehicleIdentity) -> list[Source]:
    # Imported per source: an agent without a phone bridge never loads the web stack.
    from device_agent.polling import ObdPlan

    sources: list[Source] = []
    elm = config.elm327
    if elm is not None:
        from device_agent.elm327_serial import ElmSource, SerialTransport

        sources.append(ElmSource(lambda: SerialTransport.open(elm.port, elm.baudrate),
                                 ObdPlan(elm.signals, elm.dtc_interval_s), readings, on_vin=vehicle.seen))
    can_cfg = config.can
    if can_cfg is not None:
        import can

        from device_agent.can_source import CanSource
        from device_agent.dbc import DbcDecoder, DbcMapping

        decoder = None
        if can_cfg.dbc_signals and can_cfg.dbc_file is not None:
            mappings = [DbcMapping(s.message, s.signal, s.name, s.scale, s.offset, s.rate_hz)
                        for s in can_cfg.dbc_signals]
            decoder = DbcDecoder.from_file(can_cfg.dbc_file, mappings)
        options: dict[str, Any] = {"bitrate": can_cfg.bitrate} if can_cfg.bitrate else {}
        sources.append(CanSource(
            lambda: can.Bus(interface=can_cfg.interface, channel=can_cfg.channel, **options), readings,
            plan=ObdPlan(can_cfg.signals, can_cfg.dtc_interval_s) if can_cfg.signals else None,
            decoder=decoder, on_vin=vehicle.seen))
    gps = config.gps
    if gps is not None:
        from device_agent.gps import NmeaDecoder
        from device_agent.gps_serial import GpsSource

        sources.append(GpsSource(gps.port, readings, baudrate=gps.baudrate,
                                 decoder=NmeaDecoder(speed_from_gps=gps.speed_from_gps)))
    phone = config.phone
    if phone is not None:
        from device_agent.phone_bridge import BridgeServer, create_bridge

        sources.append(BridgeServer(create_bridge(phone.token, sink), phone.host, phone.port))
    return sources

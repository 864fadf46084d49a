"""An OBD-II session through an ELM327 adapter, over any transport that exchanges one command for
one reply (the serial driver in production, a scripted transport in tests).

Initialisation follows the ELM327 datasheet: ATZ (reset), ATE0 (echo off), ATL0 (no line feeds),
ATS0 (no spaces), ATH1 (headers on, to tell ECUs apart), ATAT1 (adaptive timing), ATSP0
(automatic protocol search), then 0100 to make the search happen and ATDPN to learn its result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from device_agent.elm327 import (
    EcuMessage,
    FrameError,
    ObdProtocol,
    Reply,
    ReplyKind,
    interpret,
    parse_messages,
    protocol_from_dpn,
)
from device_agent.errors import AdapterError
from device_agent.obd import (
    SUPPORT_PIDS,
    Mode01Value,
    decode_dtcs,
    decode_mode01,
    decode_vin,
    pids_from_bitmap,
)

log = logging.getLogger(__name__)

#: Optional settings some clones answer with '?': the session works without them.
OPTIONAL_SETTINGS = ("ATL0", "ATS0", "ATAT1")
#: Replies worth one more try: the adapter was interrupted, or the bus hiccupped.
RETRY_KINDS = (ReplyKind.STOPPED, ReplyKind.BUFFER_FULL, ReplyKind.BUS_ERROR, ReplyKind.CAN_ERROR)


class Transport(Protocol):
    def exchange(self, command: str, timeout_s: float) -> str:
        """Send ``command`` and return the raw reply up to (not including) the '>' prompt.
        Raises AdapterError when the adapter is gone or silent past ``timeout_s``."""

    def close(self) -> None: ...


@dataclass
class AdapterInfo:
    version: str
    protocol: ObdProtocol
    supported_pids: set[int] = field(default_factory=set)
    ecus: list[str] = field(default_factory=list)


class Elm327Client:
    def __init__(
        self, transport: Transport, *, timeout_s: float = 2.0, search_timeout_s: float = 15.0
    ) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self.search_timeout_s = search_timeout_s
        self.info: AdapterInfo | None = None

    def command(self, command: str, timeout_s: float | None = None) -> Reply:
        reply = interpret(command, self.transport.exchange(command, timeout_s or self.timeout_s))
        if reply.kind in RETRY_KINDS:
            log.debug("%s answered %s; retrying once", command, reply.kind)
            reply = interpret(command, self.transport.exchange(command, timeout_s or self.timeout_s))
        if reply.kind is ReplyKind.RESET:
            raise AdapterError(f"the adapter reset itself ({reply.text!r}) during {command}")
        return reply

    def initialise(self) -> AdapterInfo:
        reset = self.command("ATZ", timeout_s=5.0)
        version = next((line for line in reset.lines if "ELM" in line.upper()), reset.text or "unknown")
        self._setting("ATE0", required=True)
        for setting in OPTIONAL_SETTINGS:
            self._setting(setting, required=False)
        self._setting("ATH1", required=True)
        self._setting("ATSP0", required=True)
        first = self.command("0100", timeout_s=self.search_timeout_s)
        if first.kind is not ReplyKind.DATA:
            raise AdapterError(f"no OBD-II answer from the car ({first.kind.value}: {first.text!r}); "
                               "is the ignition on?")
        protocol = protocol_from_dpn(self.command("ATDPN"))
        self.info = AdapterInfo(version=version, protocol=protocol)
        self._discover(first)
        log.info("%s on %s; ECUs %s; %d PIDs supported", version, protocol.name,
                 ",".join(self.info.ecus), len(self.info.supported_pids))
        return self.info

    def _setting(self, command: str, *, required: bool) -> None:
        reply = self.command(command)
        if reply.kind is not ReplyKind.OK:
            if required:
                raise AdapterError(f"the adapter refused {command}: {reply.kind.value} {reply.text!r}")
            log.info("adapter does not support %s (%s); continuing", command, reply.kind.value)

    def messages(self, reply: Reply) -> list[EcuMessage]:
        assert self.info is not None, "initialise() first"
        try:
            return parse_messages(reply, self.info.protocol)
        except FrameError as exc:
            raise AdapterError(f"garbled answer to {reply.command}: {exc}") from exc

    def _discover(self, first: Reply) -> None:
        """Follow the support bitmaps 0100, 0120, ... as long as their last bit says to."""
        assert self.info is not None
        reply: Reply | None = first
        ecus: set[str] = set()
        for base in SUPPORT_PIDS:
            if reply is None:
                reply = self.command(f"01{base:02X}")
            if reply.kind is not ReplyKind.DATA:
                break
            more = False
            for message in self.messages(reply):
                if message.data[:2] == bytes((0x41, base)) and len(message.data) >= 6:
                    ecus.add(message.ecu)
                    pids = pids_from_bitmap(base, message.data[2:6])
                    self.info.supported_pids |= pids
                    more |= (base + 0x20) in pids
            if not more:
                break
            reply = None
        self.info.ecus = sorted(ecus)

    def read_mode01(self, pid: int, wanted: set[str] | None = None) -> list[Mode01Value] | None:
        """Values of ``pid`` from the first ECU that answers it; None for NO DATA."""
        reply = self.command(f"01{pid:02X}")
        if reply.kind is ReplyKind.NO_DATA:
            return None
        if reply.kind is not ReplyKind.DATA:
            raise AdapterError(f"01{pid:02X} answered {reply.kind.value}: {reply.text!r}")
        for message in self.messages(reply):
            if message.data[:2] == bytes((0x41, pid)):
                try:
                    return decode_mode01(message.data, wanted)
                except ValueError as exc:
                    raise AdapterError(f"ECU {message.ecu}: {exc}") from exc
        return None

    def read_vin(self) -> str | None:
        reply = self.command("0902", timeout_s=max(self.timeout_s, 5.0))
        if reply.kind is not ReplyKind.DATA:
            return None
        for message in self.messages(reply):
            try:
                return decode_vin(message.data)
            except ValueError:
                continue
        return None

    def read_dtcs(self) -> list[str] | None:
        """Stored trouble codes from every ECU; None when the car does not answer mode 03."""
        assert self.info is not None
        reply = self.command("03")
        if reply.kind is ReplyKind.NO_DATA:
            return None
        if reply.kind is not ReplyKind.DATA:
            raise AdapterError(f"03 answered {reply.kind.value}: {reply.text!r}")
        codes: list[str] = []
        for message in self.messages(reply):
            if message.data[:1] == b"\x43":
                codes += decode_dtcs(message.data, can=self.info.protocol.is_can)
        return codes

"""ELM327 protocol core, sans I/O: framing of the adapter's replies, their interpretation, and
the OBD-II messages inside them (ELM327 datasheet, "AT commands", "Messages and errors";
ISO 15765-2 for the CAN frames; SAE J1850/ISO 9141-2/ISO 14230-4 for the older buses).

Bytes in, values out: the serial driver (``device_agent.elm327_serial``) feeds what the adapter
sent and writes what this module encodes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

from device_agent.errors import AgentError

PROMPT = b">"


def encode_command(command: str) -> bytes:
    """An AT or OBD command as the adapter reads it: ASCII, ended by a carriage return."""
    if not command.isascii() or "\r" in command:
        raise ValueError(f"not an ELM327 command: {command!r}")
    return command.encode("ascii") + b"\r"


class ReplyFramer:
    """Cuts the adapter's byte stream into replies: everything before each '>' prompt."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self._buffer += data
        replies = []
        while (end := self._buffer.find(PROMPT)) >= 0:
            chunk = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            # Clones pad with NULs (datasheet: "may be ignored"); treat anything else as ASCII.
            replies.append(chunk.replace(b"\x00", b"").decode("ascii", errors="replace"))
        return replies

    def clear(self) -> None:
        self._buffer.clear()


class ReplyKind(StrEnum):
    OK = "ok"                      # AT command accepted
    TEXT = "text"                  # an AT command's answer (ATI, ATDPN, ATRV, ...)
    DATA = "data"                  # OBD message lines
    NO_DATA = "no_data"            # no ECU answered within the timeout
    STOPPED = "stopped"            # the adapter was interrupted by a byte we sent
    CAN_ERROR = "can_error"        # CAN bus problem (wiring, wrong bit rate, ignition off)
    BUS_ERROR = "bus_error"        # BUS ERROR, BUS BUSY, FB ERROR, DATA ERROR, <RX ERROR
    BUS_INIT_ERROR = "bus_init_error"
    UNABLE_TO_CONNECT = "unable_to_connect"
    BUFFER_FULL = "buffer_full"
    UNKNOWN_COMMAND = "unknown_command"  # '?'
    RESET = "reset"                # LV RESET / ACT ALERT: the adapter reset or went to sleep


# Datasheet "Messages and errors". Longest patterns first so that "BUS INIT: ...ERROR" wins.
_ERRORS: tuple[tuple[str, ReplyKind], ...] = (
    ("UNABLE TO CONNECT", ReplyKind.UNABLE_TO_CONNECT),
    ("BUS INIT", ReplyKind.BUS_INIT_ERROR),
    ("NO DATA", ReplyKind.NO_DATA),
    ("STOPPED", ReplyKind.STOPPED),
    ("CAN ERROR", ReplyKind.CAN_ERROR),
    ("BUFFER FULL", ReplyKind.BUFFER_FULL),
    ("BUS BUSY", ReplyKind.BUS_ERROR),
    ("BUS ERROR", ReplyKind.BUS_ERROR),
    ("FB ERROR", ReplyKind.BUS_ERROR),
    ("DATA ERROR", ReplyKind.BUS_ERROR),
    ("RX ERROR", ReplyKind.BUS_ERROR),
    ("ERR", ReplyKind.BUS_ERROR),
    ("LV RESET", ReplyKind.RESET),
    ("ACT ALERT", ReplyKind.RESET),
    ("LP ALERT", ReplyKind.RESET),
)
_HEX_LINE = re.compile(r"[0-9A-Fa-f ]+")
_FRAME_INDEX = re.compile(r"^[0-9A-Fa-f]:\s*")  # "0: 49 02 01 ..." (headers off, CAN multi-frame)


@dataclass(frozen=True, slots=True)
class Reply:
    command: str
    kind: ReplyKind
    lines: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.kind in (ReplyKind.OK, ReplyKind.TEXT, ReplyKind.DATA)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _squash(text: str) -> str:
    return text.replace(" ", "").upper()


def interpret(command: str, raw: str) -> Reply:
    """Classify one reply. Tolerates an echo left on, blank lines, 'SEARCHING...' and the
    'BUS INIT: ...OK' progress line (datasheet, "Messages and errors")."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", raw)]
    lines = [line for line in lines if line]
    if lines and _squash(lines[0]) == _squash(command):
        lines = lines[1:]  # echo (ATE1, or a clone that ignores ATE0)
    lines = [line for line in lines if not line.upper().startswith("SEARCHING")]
    if lines and lines[0].upper().replace(" ", "") in ("BUSINIT:...OK", "BUSINIT:OK"):
        lines = lines[1:]
    upper = " ".join(lines).upper()
    if lines == ["?"]:
        return Reply(command, ReplyKind.UNKNOWN_COMMAND, tuple(lines))
    for needle, kind in _ERRORS:
        if needle in upper:
            return Reply(command, kind, tuple(lines))
    if command.upper().startswith("AT"):
        if lines and all(line.upper() == "OK" for line in lines):
            return Reply(command, ReplyKind.OK, tuple(lines))
        return Reply(command, ReplyKind.TEXT, tuple(lines))
    if not lines:
        return Reply(command, ReplyKind.NO_DATA, ())
    return Reply(command, ReplyKind.DATA, tuple(lines))


@dataclass(frozen=True, slots=True)
class ObdProtocol:
    """An OBD-II bus the adapter can speak (datasheet, "ATSP"; ATDPN gives the number)."""

    number: str
    name: str
    header_bytes: float  # 1.5 for 11-bit CAN ids (three hex digits)

    @property
    def is_can(self) -> bool:
        return self.number in "6789ABC"

    @property
    def header_hex_digits(self) -> int:
        return int(self.header_bytes * 2)


PROTOCOLS = {p.number: p for p in (
    ObdProtocol("1", "SAE J1850 PWM (41.6 kbaud)", 3),
    ObdProtocol("2", "SAE J1850 VPW (10.4 kbaud)", 3),
    ObdProtocol("3", "ISO 9141-2 (5 baud init)", 3),
    ObdProtocol("4", "ISO 14230-4 KWP (5 baud init)", 3),
    ObdProtocol("5", "ISO 14230-4 KWP (fast init)", 3),
    ObdProtocol("6", "ISO 15765-4 CAN (11 bit ID, 500 kbaud)", 1.5),
    ObdProtocol("7", "ISO 15765-4 CAN (29 bit ID, 500 kbaud)", 4),
    ObdProtocol("8", "ISO 15765-4 CAN (11 bit ID, 250 kbaud)", 1.5),
    ObdProtocol("9", "ISO 15765-4 CAN (29 bit ID, 250 kbaud)", 4),
    ObdProtocol("A", "SAE J1939 CAN (29 bit ID, 250 kbaud)", 4),
    ObdProtocol("B", "USER1 CAN (11 bit ID, 125 kbaud)", 1.5),
    ObdProtocol("C", "USER2 CAN (11 bit ID, 50 kbaud)", 1.5),
)}


def protocol_from_dpn(reply: Reply) -> ObdProtocol:
    """ATDPN answers the protocol number, prefixed 'A' when it was found automatically."""
    text = _squash(reply.text)
    number = text[1:] if len(text) == 2 and text.startswith("A") else text
    try:
        return PROTOCOLS[number]
    except KeyError:
        raise ValueError(f"ATDPN answered {reply.text!r}, not a protocol number") from None


@dataclass(frozen=True, slots=True)
class EcuMessage:
    """One ECU's complete answer: its address and the service bytes (e.g. 41 0C 1A F8)."""

    ecu: str
    data: bytes


class FrameError(AgentError, ValueError):
    """Reply lines that are not well-formed OBD frames for the protocol in use."""


def parse_messages(reply: Reply, protocol: ObdProtocol) -> list[EcuMessage]:
    """The ECU messages in a DATA reply sent with headers on (ATH1), spaces on or off.

    CAN: each line is the CAN id then the ISO 15765-2 frame (PCI byte first); single, first and
    consecutive frames are reassembled per ECU. Older buses: each line is a three-byte header,
    data and a checksum byte; several lines from one ECU are joined (mode 09 drops the
    per-line message counter, SAE J1979 section 8.9)."""
    frames: dict[str, list[bytes]] = defaultdict(list)
    digits = protocol.header_hex_digits
    for line in reply.lines:
        hexdigits = line.replace(" ", "")
        if not _HEX_LINE.fullmatch(hexdigits) or len(hexdigits) <= digits or (len(hexdigits) - digits) % 2:
            raise FrameError(f"{line!r} is not a {protocol.name} frame with a header")
        header = hexdigits[:digits].upper()
        payload = bytes.fromhex(hexdigits[digits:])
        if protocol.is_can:
            frames[header].append(payload)
        else:
            if len(payload) < 2:
                raise FrameError(f"{line!r} carries no data")
            # Source address is the header's third byte; the last byte is the checksum.
            frames[header[4:6]].append(payload[:-1])
    assemble = _assemble_iso_tp if protocol.is_can else _join_legacy
    return [EcuMessage(ecu, assemble(ecu, parts)) for ecu, parts in sorted(frames.items())]


def _assemble_iso_tp(ecu: str, frames: list[bytes]) -> bytes:
    first = frames[0]
    kind = first[0] >> 4
    if kind == 0:  # single frame: PCI low nibble is the length (ISO 15765-2 section 9.6.2)
        length = first[0] & 0x0F
        if length == 0 or length > len(first) - 1:
            raise FrameError(f"ECU {ecu}: single frame length {length} does not fit")
        return first[1 : 1 + length]
    if kind != 1:
        raise FrameError(f"ECU {ecu}: reply starts with a {kind:#x} frame, not a single or first frame")
    length = ((first[0] & 0x0F) << 8) | first[1]
    data = bytearray(first[2:])
    expected = 1
    for frame in frames[1:]:
        if frame[0] >> 4 != 2:
            raise FrameError(f"ECU {ecu}: expected a consecutive frame, got PCI {frame[0]:#04x}")
        if frame[0] & 0x0F != expected:
            raise FrameError(
                f"ECU {ecu}: consecutive frame {frame[0] & 0x0F} out of order (wanted {expected})")
        data += frame[1:]
        expected = (expected + 1) % 16
    if len(data) < length:
        raise FrameError(f"ECU {ecu}: message of {length} bytes arrived with only {len(data)}")
    return bytes(data[:length])


def _join_legacy(_ecu: str, frames: list[bytes]) -> bytes:
    if len(frames) == 1:
        return frames[0]
    if frames[0][0] == 0x49:  # mode 09: "49 PID N data..." per line, N counting from 1
        ordered = sorted(frames, key=lambda f: f[2] if len(f) > 2 else 0)
        return ordered[0][:2] + b"".join(f[3:] for f in ordered)
    return frames[0] + b"".join(f[1:] for f in frames[1:])

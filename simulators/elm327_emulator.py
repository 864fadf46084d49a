"""An ELM327 adapter plugged into a simulated car, on a pseudo-terminal.

Faithful to the ELM327 datasheet where OBD clients depend on it: the AT commands they send,
echo/linefeed/space/header settings, 'SEARCHING...' on the first request after ATSP0, NO DATA for
PIDs the car lacks, ISO 15765-2 multi-frame answers (VIN), and the three-byte headers and checksums
of the older buses. ``Quirks`` reproduces the misbehaviour of cheap clones.

``Elm327Emulator`` is the pure core (a command in, the adapter's bytes out);
``PtyElm327`` serves it on a pty that any serial client can open.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from dataclasses import dataclass, field

from simulators.ecu import EmulatedEcu, answer

DEFAULT_VERSION = "ELM327 v1.5"


@dataclass
class Quirks:
    """Misbehaviour seen in ELM327 clones."""

    echo_stuck: bool = False                   # ignores ATE0
    reply_delay_s: float = 0.0                 # slow answers
    silent_pids: set[int] = field(default_factory=set)  # advertised, then NO DATA
    stopped_every: int = 0                     # every Nth OBD request answers STOPPED
    can_error_every: int = 0                   # every Nth OBD request answers CAN ERROR
    unknown_at: set[str] = field(default_factory=set)   # AT commands answered '?'
    version: str = DEFAULT_VERSION


class Elm327Emulator:
    def __init__(self, ecus: list[EmulatedEcu], *, protocol: str = "6", quirks: Quirks | None = None) -> None:
        if protocol not in ("3", "4", "5", "6", "7", "8", "9"):
            raise ValueError(f"protocol {protocol!r} is not emulated")
        self.ecus = ecus
        self.car_protocol = protocol
        self.quirks = quirks or Quirks()
        self.requests = 0
        self.commands: list[str] = []
        self._defaults()

    def _defaults(self) -> None:
        self.echo = True
        self.linefeeds = False
        self.spaces = True
        self.headers = False
        self.selected_protocol = "0"
        self.connected = False

    @property
    def is_can(self) -> bool:
        return self.car_protocol in "6789"

    # -- the adapter --
    def handle(self, raw: str) -> bytes:
        """The adapter's complete answer (ending with the '>' prompt) to one command line."""
        command = raw.strip().upper().replace(" ", "")
        self.commands.append(command)
        echo = raw.strip() + "\r" if self.echo or self.quirks.echo_stuck else ""
        if command.startswith("AT"):
            body = self._at(command[2:])
        elif command:
            body = self._obd(command)
        else:
            body = "?"
        eol = "\r\n" if self.linefeeds else "\r"
        text = echo + body.replace("\r", eol) + eol + eol + ">"
        return text.encode("ascii")

    def _at(self, cmd: str) -> str:
        if "AT" + cmd in self.quirks.unknown_at:
            return "?"
        if cmd == "Z" or cmd == "WS":
            self._defaults()
            return "\r" + self.quirks.version
        if cmd == "I":
            return self.quirks.version
        if cmd == "@1":
            return "OBDII to RS232 Interpreter"
        if cmd == "RV":
            return "12.6V"
        if cmd == "D":
            self._defaults()
            return "OK"
        if cmd == "DPN":
            return ("A" if self.selected_protocol == "0" else "") + self.car_protocol
        if cmd == "DP":
            return "AUTO, " + _PROTOCOL_NAMES[self.car_protocol]
        flags = {"E": "echo", "L": "linefeeds", "S": "spaces", "H": "headers"}
        if len(cmd) == 2 and cmd[0] in flags and cmd[1] in "01":
            setattr(self, flags[cmd[0]], cmd[1] == "1")
            return "OK"
        if cmd.startswith(("SP", "TP")):
            number = cmd[2:].lstrip("A") or "0"
            if number not in "0123456789ABC":
                return "?"
            self.selected_protocol = number
            self.connected = False
            return "OK"
        if cmd.startswith(("AT", "ST", "CAF", "SH", "M", "AL", "CFC", "PC")):
            return "OK"
        return "?"

    def _obd(self, cmd: str) -> str:
        if len(cmd) % 2 and len(cmd) > 2:  # optional trailing response count digit
            cmd = cmd[:-1]
        try:
            request = bytes.fromhex(cmd)
        except ValueError:
            return "?"
        prefix = ""
        if not self.connected:
            if self.selected_protocol not in ("0", self.car_protocol):
                return "BUS INIT: ...ERROR" if not self.is_can else "UNABLE TO CONNECT"
            self.connected = True
            if self.selected_protocol == "0":
                prefix = "SEARCHING...\r"
        self.requests += 1
        q = self.quirks
        if q.reply_delay_s:
            time.sleep(q.reply_delay_s)
        if q.stopped_every and self.requests % q.stopped_every == 0:
            return "STOPPED"
        if q.can_error_every and self.requests % q.can_error_every == 0:
            return "CAN ERROR"
        answers = [(ecu, data) for ecu in self.ecus
                   if (data := answer(ecu, request, can=self.is_can, silent=q.silent_pids)) is not None]
        if not answers:
            return prefix + "NO DATA"
        lines: list[str] = []
        for ecu, data in answers:
            lines += self._format(ecu, data)
        return prefix + "\r".join(lines)

    # -- framing --
    def _hex(self, data: bytes) -> str:
        return (" " if self.spaces else "").join(f"{b:02X}" for b in data)

    def _format(self, ecu: EmulatedEcu, data: bytes) -> list[str]:
        if not self.is_can:
            return self._format_legacy(ecu, data)
        header = f"{ecu.can_id:03X}" if self.car_protocol in "68" else f"18DAF1{ecu.source_address:02X}"
        if self.car_protocol not in "68" and self.spaces:
            header = " ".join(header[i : i + 2] for i in range(0, 8, 2))
        sep = " " if self.spaces else ""
        if len(data) <= 7:  # ISO 15765-2 single frame, padded to 8 bytes
            frame = bytes([len(data)]) + data.ljust(7, b"\x00")
            return [header + sep + self._hex(frame) if self.headers else self._hex(data)]
        frames = [bytes([0x10 | (len(data) >> 8), len(data) & 0xFF]) + data[:6]]
        rest, index = data[6:], 1
        while rest:
            frames.append(bytes([0x20 | (index % 16)]) + rest[:7].ljust(7, b"\x00"))
            rest, index = rest[7:], index + 1
        if self.headers:
            return [header + sep + self._hex(f) for f in frames]
        # Headers off: total length, then "n: data" per frame (datasheet, "Multiline responses").
        lines = [f"{len(data):03X}"]
        for n, frame in enumerate(frames):
            lines.append(f"{n % 16:X}: " + self._hex(frame[2:] if n == 0 else frame[1:]))
        return lines

    def _format_legacy(self, ecu: EmulatedEcu, data: bytes) -> list[str]:
        header = bytes([0x48, 0x6B, ecu.source_address])
        if data[:1] == b"\x49" and len(data) > 7:  # mode 09: 4 data bytes per message, counted
            body = data[2:]
            chunks = [body[i : i + 4] for i in range(0, len(body), 4)]
            messages = [data[:2] + bytes([n + 1]) + chunk for n, chunk in enumerate(chunks)]
        elif data[:1] == b"\x43":
            body = data[1:]
            messages = [b"\x43" + body[i : i + 6] for i in range(0, len(body), 6)]
        else:
            messages = [data]
        lines = []
        for message in messages:
            frame = header + message
            checksum = bytes([sum(frame) & 0xFF])
            lines.append(self._hex(frame + checksum if self.headers else message))
        return lines


_PROTOCOL_NAMES = {
    "3": "ISO 9141-2", "4": "ISO 14230-4 (KWP 5BAUD)", "5": "ISO 14230-4 (KWP FAST)",
    "6": "ISO 15765-4 (CAN 11/500)", "7": "ISO 15765-4 (CAN 29/500)",
    "8": "ISO 15765-4 (CAN 11/250)", "9": "ISO 15765-4 (CAN 29/250)",
}


class PtyElm327:
    """Serves an emulator on a pseudo-terminal; clients open ``port`` like a USB adapter."""

    def __init__(self, emulator: Elm327Emulator) -> None:
        self.emulator = emulator
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo or CR/LF translation by the line discipline
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="elm327-emulator", daemon=True)

    def __enter__(self) -> PtyElm327:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 4096)
            except OSError:
                return
            pending += chunk
            while b"\r" in pending:
                line, pending = pending.split(b"\r", 1)
                text = line.decode("ascii", errors="replace").strip("\n")
                if not text.strip():
                    continue  # a bare CR: real adapters repeat the last command; we ignore it
                os.write(self._master, self.emulator.handle(text))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

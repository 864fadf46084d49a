"""SAE J1979 (ISO 15031-5) decoding, pure: which PIDs an ECU supports, mode 01 values through
the signal catalog, trouble codes (mode 03) and the VIN (mode 09 PID 02)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from protocol.catalog import SignalSpec, load_catalog

#: Mode 01 PIDs whose answer is a bitmap of the next 32 PIDs (J1979 "PIDs supported").
SUPPORT_PIDS = (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0, 0xE0)
DTC_LIST_SIGNAL = "obdDTCList"


def pids_from_bitmap(base: int, bitmap: bytes) -> set[int]:
    """PIDs ``base+1 .. base+32`` whose bit is set; bit 7 of byte A is ``base+1``."""
    if len(bitmap) < 4:
        raise ValueError(f"a support bitmap is 4 bytes, got {len(bitmap)}")
    value = int.from_bytes(bitmap[:4], "big")
    return {base + i + 1 for i in range(32) if value & (1 << (31 - i))}


@cache
def mode01_signals() -> dict[int, tuple[SignalSpec, ...]]:
    """Catalog signals by the mode 01 PID that carries them."""
    by_pid: dict[int, list[SignalSpec]] = {}
    for spec in load_catalog():
        if spec.obd is not None and spec.obd.mode == "01":
            by_pid.setdefault(int(spec.obd.pid, 16), []).append(spec)
    return {pid: tuple(specs) for pid, specs in by_pid.items()}


def pid_for_signal(name: str) -> int:
    spec = load_catalog().get(name)
    if spec is None:
        raise KeyError(f"{name!r} is not in the signal catalog")
    if spec.obd is None or spec.obd.mode != "01":
        raise KeyError(f"{name!r} has no SAE J1979 mode 01 PID")
    return int(spec.obd.pid, 16)


@dataclass(frozen=True, slots=True)
class Mode01Value:
    name: str
    value: float


def decode_mode01(service_data: bytes, wanted: Iterable[str] | None = None) -> list[Mode01Value]:
    """Values in one ECU's mode 01 answer ``41 PID A B ...``, for every catalog signal of that PID
    (or only those in ``wanted``). Raises ValueError when the answer is not for mode 01 or too short."""
    if len(service_data) < 2 or service_data[0] != 0x41:
        raise ValueError(f"not a mode 01 answer: {service_data.hex(' ')}")
    pid = service_data[1]
    names = set(wanted) if wanted is not None else None
    out = []
    for spec in mode01_signals().get(pid, ()):
        if names is not None and spec.name not in names:
            continue
        assert spec.obd is not None
        out.append(Mode01Value(spec.name, round(spec.obd.decode(service_data[2:]), 6)))
    return out


_DTC_LETTERS = "PCBU"  # powertrain, chassis, body, network (J1979 / SAE J2012)


def dtc_code(two_bytes: bytes) -> str:
    """SAE J2012 five-character code: 2 bits system letter, then 2 + 4 + 4 + 4 bits of digits."""
    a, b = two_bytes[0], two_bytes[1]
    return f"{_DTC_LETTERS[a >> 6]}{(a >> 4) & 0x3}{a & 0x0F:X}{b >> 4:X}{b & 0x0F:X}"


def decode_dtcs(service_data: bytes, *, can: bool) -> list[str]:
    """Stored trouble codes from a mode 03 answer. On CAN the byte after 0x43 counts the codes;
    older buses pad each message with 00 00."""
    if not service_data or service_data[0] != 0x43:
        raise ValueError(f"not a mode 03 answer: {service_data.hex(' ')}")
    body = service_data[2:] if can else service_data[1:]
    codes = []
    for i in range(0, len(body) - 1, 2):
        pair = body[i : i + 2]
        if pair != b"\x00\x00":
            codes.append(dtc_code(pair))
    return codes


def dtc_list_value(codes: Iterable[str]) -> str:
    """The ``obdDTCList`` wire value: a JSON array of codes, sorted and unique (as DIMO sends it)."""
    return json.dumps(sorted(set(codes)), separators=(",", ":"))


def decode_vin(service_data: bytes) -> str:
    """The VIN in a mode 09 PID 02 answer. CAN answers carry a one-byte item count first, older
    buses pad with NULs; both drop out as non-VIN characters (ISO 3779: 17 of 0-9 A-Z)."""
    if len(service_data) < 2 or service_data[0] != 0x49 or service_data[1] != 0x02:
        raise ValueError(f"not a mode 09 PID 02 answer: {service_data.hex(' ')}")
    chars = "".join(chr(b) for b in service_data[2:] if chr(b).isascii() and chr(b).isalnum())
    if len(chars) < 17:
        raise ValueError(f"VIN answer carries {len(chars)} characters, not 17")
    return chars[-17:].upper()

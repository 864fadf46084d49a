"""Simulated ECUs' OBD-II behaviour (SAE J1979), shared by the ELM327 emulator and the ECUs on
the virtual CAN bus: which PIDs they support, what bytes they answer, trouble codes and the VIN."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from protocol.catalog import load_catalog

# SAE J1979 mode 01 data lengths of the PIDs the emulator can answer.
MODE01_DATA_LENGTH = {
    0x01: 4, 0x04: 1, 0x05: 1, 0x06: 1, 0x07: 1, 0x0A: 1, 0x0B: 1, 0x0C: 2, 0x0D: 1, 0x0F: 1,
    0x10: 2, 0x11: 1, 0x1F: 2, 0x21: 2, 0x24: 4, 0x25: 4, 0x2C: 1, 0x2E: 1, 0x2F: 1, 0x30: 1,
    0x31: 2, 0x33: 1, 0x42: 2, 0x46: 1, 0x5B: 1, 0x5C: 1, 0x5E: 2, 0x62: 1, 0xA6: 4,
}


SUPPORT_BASES = (0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0)


def mode01_payloads(values: dict[str, float]) -> dict[int, bytes]:
    """What an ECU answers per PID for these catalog values (each PID's bytes combined)."""
    out: dict[int, bytearray] = {}
    for spec in load_catalog():
        if spec.obd is None or spec.obd.mode != "01" or spec.name not in values:
            continue
        pid = int(spec.obd.pid, 16)
        encoded = spec.obd.encode(values[spec.name], MODE01_DATA_LENGTH.get(pid))
        merged = out.setdefault(pid, bytearray(len(encoded)))
        for i, byte in enumerate(encoded):
            merged[i] |= byte
    return {pid: bytes(data) for pid, data in out.items()}


def support_bitmap(base: int, supported: set[int]) -> bytes:
    """The 4-byte 'PIDs supported' answer for PIDs base+1..base+32 (J1979)."""
    value = 0
    for i in range(32):
        if base + i + 1 in supported:
            value |= 1 << (31 - i)
    return value.to_bytes(4, "big")


@dataclass
class EmulatedEcu:
    """One ECU: its addresses and where its live values come from."""

    can_id: int = 0x7E8                 # 11-bit answer id; 29-bit is 18DAF1xx with xx = source
    source_address: int = 0x10          # older buses and 29-bit CAN
    values: Callable[[], dict[str, float]] = dict
    vin: str | None = None
    dtcs: list[str] = field(default_factory=list)
    #: PIDs it answers; None = every PID its values cover.
    pids: set[int] | None = None


def _dtc_bytes(code: str) -> bytes:
    letter = "PCBU".index(code[0])
    value = (letter << 14) | (int(code[1], 16) << 12) | int(code[2:], 16)
    return value.to_bytes(2, "big")


def answer(ecu: EmulatedEcu, request: bytes, *, can: bool, silent: Collection[int] = ()) -> bytes | None:
    """The ECU's SAE J1979 answer to a request (service byte first); None when it stays silent."""
    mode = request[0]
    if mode == 0x01 and len(request) >= 2:
        payloads = mode01_payloads(ecu.values())
        supported = set(payloads) if ecu.pids is None else ecu.pids & set(payloads)
        out = bytearray([0x41])
        for pid in request[1:7]:
            if pid in (0x00, *SUPPORT_BASES):
                # A support PID is itself supported when a higher PID is.
                higher = supported | {b for b in SUPPORT_BASES if any(p > b for p in supported)}
                if pid and pid not in higher:
                    continue
                out += bytes([pid]) + support_bitmap(pid, higher)
            elif pid in supported and pid not in silent:
                out += bytes([pid]) + payloads[pid]
        return bytes(out) if len(out) > 1 else None
    if mode == 0x03:
        codes = b"".join(_dtc_bytes(c) for c in ecu.dtcs)
        if can:
            return bytes([0x43, len(ecu.dtcs)]) + codes
        return bytes([0x43]) + (codes or b"\x00\x00").ljust(6 * max(1, -(-len(ecu.dtcs) // 3)), b"\x00")
    if mode == 0x04:
        ecu.dtcs.clear()
        return b"\x44"
    if mode == 0x09 and request[1:2] == b"\x02" and ecu.vin:
        if can:
            return b"\x49\x02\x01" + ecu.vin.encode("ascii")
        return b"\x49\x02" + b"\x00\x00\x00" + ecu.vin.encode("ascii")
    if mode == 0x09 and request[1:2] == b"\x00" and ecu.vin:
        return b"\x49\x00" + support_bitmap(0, {0x02})
    return None

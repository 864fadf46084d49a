"""The signal catalog: names, units, types, plausible ranges, privilege class, OBD-II decoding.

The data lives in ``signals.toml`` beside this module; this module only loads and serves it.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any


class ValueType(StrEnum):
    """The JSON shape of a value on the wire."""

    FLOAT = "float"
    STRING = "string"
    LOCATION = "location"


class Privilege(StrEnum):
    """DIMO's privilege classes: location data needs its own, stronger consent."""

    LOCATION = "location"
    NON_LOCATION = "non-location"




@dataclass(frozen=True, slots=True)
class ObdDecode:
    """How SAE J1979 mode 01 data bytes of one PID become this signal's value.

    Reads ``length`` big-endian bytes from byte ``start`` of the PID's data bytes
    (J1979 names them A, B, C, D), masks them when ``mask`` is set, then ``raw*scale+offset``.
    ``formula`` is the same rule in J1979's notation, for people.
    """

    mode: str
    pid: str
    start: int
    length: int
    scale: float
    offset: float
    formula: str
    mask: int | None = None

    @property
    def data_bytes(self) -> int:
        """How many data bytes the reply must carry at least."""
        return self.start + self.length

    def decode(self, data: bytes) -> float:
        if len(data) < self.data_bytes:
            raise ValueError(
                f"PID {self.pid} needs {self.data_bytes} data bytes, got {len(data)}"
            )
        raw = int.from_bytes(data[self.start : self.start + self.length], "big")
        if self.mask is not None:
            raw &= self.mask
        return raw * self.scale + self.offset

    def encode(self, value: float, data_length: int | None = None) -> bytes:
        """The data bytes an ECU sends for ``value`` (the inverse of ``decode``), clamped to what
        the bytes can hold; ``data_length`` pads to the PID's full J1979 length."""
        raw = round((value - self.offset) / self.scale)
        limit = (1 << (8 * self.length)) - 1
        if self.mask is not None:
            limit = min(limit, self.mask)
        raw = min(max(raw, 0), limit)
        data = bytearray(max(data_length or 0, self.data_bytes))
        data[self.start : self.start + self.length] = raw.to_bytes(self.length, "big")
        return bytes(data)


@dataclass(frozen=True, slots=True)
class SignalSpec:
    name: str
    vss: str
    unit: str
    type: ValueType
    vss_datatype: str
    privilege: Privilege
    description: str
    min: float | None = None
    max: float | None = None
    obd: ObdDecode | None = None

    @property
    def boolean(self) -> bool:
        """A VSS boolean: 0 or 1 on the wire."""
        return self.vss_datatype == "boolean"

    def in_range(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.min is not None and value < self.min:
            return False
        return not (self.max is not None and value > self.max)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["type"] = self.type.value
        out["privilege"] = self.privilege.value
        return out


class Catalog:
    """All known signals, by name."""

    def __init__(self, signals: list[SignalSpec]) -> None:
        self._by_name: dict[str, SignalSpec] = {}
        for spec in signals:
            if spec.name in self._by_name:
                raise ValueError(f"signal {spec.name!r} is defined twice")
            self._by_name[spec.name] = spec

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[SignalSpec]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> SignalSpec | None:
        return self._by_name.get(name)

    def __getitem__(self, name: str) -> SignalSpec:
        return self._by_name[name]


def _spec_from_toml(entry: dict[str, Any]) -> SignalSpec:
    obd = entry.get("obd")
    return SignalSpec(
        name=entry["name"],
        vss=entry["vss"],
        unit=entry["unit"],
        type=ValueType(entry["type"]),
        vss_datatype=entry["vss_datatype"],
        privilege=Privilege(entry["privilege"]),
        description=entry["description"],
        min=entry.get("min"),
        max=entry.get("max"),
        obd=ObdDecode(**obd) if obd else None,
    )


def parse_catalog(text: str) -> Catalog:
    data = tomllib.loads(text)
    return Catalog([_spec_from_toml(entry) for entry in data["signal"]])


@cache
def load_catalog() -> Catalog:
    """The catalog shipped with this package (parsed once per process)."""
    text = resources.files("protocol").joinpath("signals.toml").read_text(encoding="utf-8")
    return parse_catalog(text)

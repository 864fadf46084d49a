"""Passive decoding of a car's own broadcast CAN frames with a DBC file (cantools), mapped to
catalog names by config. Pure: frames in, readings out; the rate limit takes the time given."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cantools
from cantools.database.can import Database

from device_agent.errors import AgentError
from protocol.catalog import load_catalog


@dataclass(frozen=True, slots=True)
class DbcMapping:
    """DBC ``message``.``signal`` becomes catalog signal ``name`` as value * scale + offset
    (for units: a DBC in mph feeds ``speed`` in km/h with scale 1.609344)."""

    message: str
    signal: str
    name: str
    scale: float = 1.0
    offset: float = 0.0
    rate_hz: float = 1.0


def load_can_database(path: Path) -> Database:
    """A DBC file as cantools reads it; non-strict, as real-world DBCs (opendbc's) need."""
    try:
        database = cantools.database.load_file(str(path), strict=False)
    except (OSError, cantools.database.errors.Error) as exc:
        raise AgentError(f"cannot load DBC {path}: {exc}") from exc
    if not isinstance(database, Database):
        raise AgentError(f"{path} is not a CAN database")
    return database


class DbcDecoder:
    def __init__(self, database: Database, mappings: Iterable[DbcMapping]) -> None:
        catalog = load_catalog()
        self.database = database
        self._by_frame: dict[int, list[DbcMapping]] = {}
        for mapping in mappings:
            if mapping.name not in catalog:
                raise AgentError(f"DBC mapping to {mapping.name!r}: not a catalog signal")
            try:
                message = database.get_message_by_name(mapping.message)
            except KeyError:
                raise AgentError(f"DBC has no message {mapping.message!r}") from None
            if mapping.signal not in {s.name for s in message.signals}:
                raise AgentError(f"DBC message {mapping.message} has no signal {mapping.signal!r}")
            self._by_frame.setdefault(message.frame_id, []).append(mapping)
        self._next_due: dict[str, float] = {}

    @classmethod
    def from_file(cls, path: Path, mappings: Iterable[DbcMapping]) -> DbcDecoder:
        return cls(load_can_database(path), mappings)

    @property
    def frame_ids(self) -> set[int]:
        return set(self._by_frame)

    def decode(self, frame_id: int, data: bytes, now: float) -> list[tuple[str, float]]:
        """Catalog (name, value) pairs due at ``now`` from one frame; frames not mapped, or
        arriving before a signal's next due time, give nothing."""
        mappings = self._by_frame.get(frame_id)
        if not mappings:
            return []
        due = [m for m in mappings if now >= self._next_due.get(m.name, 0.0)]
        if not due:
            return []
        try:
            decoded = self.database.decode_message(frame_id, data, decode_choices=False)
        except (ValueError, KeyError, cantools.database.errors.Error):
            return []  # short or corrupt frame: skip it, the next one will do
        if not isinstance(decoded, dict):
            return []
        out = []
        for mapping in due:
            raw = decoded.get(mapping.signal)
            if isinstance(raw, int | float):
                out.append((mapping.name, round(float(raw) * mapping.scale + mapping.offset, 6)))
                self._next_due[mapping.name] = now + 1.0 / mapping.rate_hz
        return out

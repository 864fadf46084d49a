"""The one knob: a single privacy level per driver that decides, everywhere, which licences cover
their vehicles. Each level widens what may be read and raises the price it must pay."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

from protocol.catalog import Privilege


class Knob(IntEnum):
    PRIVATE = 0
    VEHICLE = 1
    LOCATION = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Knob:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown knob level {text!r}: choose one of "
                             f"{', '.join(k.label for k in cls)}") from None


#: The lowest monthly price per vehicle (minor units) a licence must pay at each level.
PRICE_FLOOR_MINOR: dict[Knob, dict[Privilege, int]] = {
    Knob.PRIVATE: {},
    Knob.VEHICLE: {Privilege.NON_LOCATION: 100},
    Knob.LOCATION: {Privilege.NON_LOCATION: 100, Privilege.LOCATION: 300},
}

#: The one sentence a driver reads for each level.
SENTENCES: dict[Knob, str] = {
    Knob.PRIVATE: "No licence reads your cars' data.",
    Knob.VEHICLE: "Licences your union grants may read your cars' signals, never where they are, "
                  "if they pay at least 1.00 per car a month.",
    Knob.LOCATION: "Licences may also read where your cars are if they pay at least 3.00 per car "
                   "a month (1.00 without location).",
}

#: A driver who never turned the knob: joining a union consents to non-location licences only.
DEFAULT_KNOB = Knob.VEHICLE


def knob_allows(level: Knob, privileges: Iterable[Privilege], price_minor: int) -> bool:
    """Whether a licence reading these privilege classes at this price may cover the driver."""
    floors = PRICE_FLOOR_MINOR[level]
    return all(p in floors and price_minor >= floors[p] for p in privileges)


def knob_refusal(level: Knob, privileges: Iterable[Privilege], price_minor: int) -> str | None:
    """Why the knob refuses such a licence, or None."""
    floors = PRICE_FLOOR_MINOR[level]
    for privilege in sorted(privileges):
        if privilege not in floors:
            return f"the driver's knob ({level.label}) does not share {privilege.value} data"
        if price_minor < floors[privilege]:
            return (f"the driver's knob ({level.label}) asks at least {floors[privilege]} "
                    f"for {privilege.value} data, the licence pays {price_minor}")
    return None

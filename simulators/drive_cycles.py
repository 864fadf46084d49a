"""Standard drive cycles: speed (km/h) once per second.

The data is ``data/driving_cycles_car.csv`` from the BSD-3-Clause ``carculator_utils`` package
(Paul Scherrer Institut), carried with its licence in ``data/ATTRIBUTION.md``: WLTC (class 3)
and its four phases, the CADC (Artemis) urban, road and motorway parts, and the NEDC.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from functools import cache
from importlib import resources

DATA_FILE = "driving_cycles_car.csv"
#: The car cycles in the file (it also holds SORT bus cycles, which we leave out).
CAR_CYCLES = ("WLTC", "WLTC 3.1", "WLTC 3.2", "WLTC 3.3", "WLTC 3.4", "CADC Urban", "CADC Road",
              "CADC Motorway", "CADC Motorway 130", "CADC", "NEDC")


@cache
def _columns() -> dict[str, tuple[float, ...]]:
    text = resources.files("simulators").joinpath("data", DATA_FILE).read_text("utf-8")
    rows = list(csv.reader(text.splitlines(), delimiter=";"))
    header = rows[0]
    columns: dict[str, tuple[float, ...]] = {}
    for index, name in enumerate(header[1:], start=1):
        values = [float(row[index]) for row in rows[1:] if index < len(row) and row[index] != ""]
        columns[name] = tuple(values)
    return columns


def drive_cycle(name: str) -> tuple[float, ...]:
    """Speed in km/h for each second of cycle ``name`` (one of CAR_CYCLES)."""
    if name not in CAR_CYCLES:
        raise KeyError(f"unknown drive cycle {name!r}; known: {', '.join(CAR_CYCLES)}")
    return _columns()[name]


def cycle_distance_km(name: str) -> float:
    """Distance of the cycle by the trapezoid rule, as a speed integral."""
    speeds = drive_cycle(name)
    return sum((a + b) / 2 for a, b in itertools.pairwise(speeds)) / 3600


def busiest_stretch(speeds: Sequence[float], seconds: int) -> int:
    """The second at which the ``seconds`` long stretch of ``speeds`` (km/h, one a second) that
    covers the most distance begins: the earliest of equals, 0 when the trace is not longer."""
    if seconds < 1:
        raise ValueError(f"a stretch lasts at least a second, not {seconds}")
    steps = [(a + b) / 2 for a, b in itertools.pairwise(speeds)]  # trapezoid, as cycle_distance_km
    if len(steps) <= seconds:
        return 0
    covered = [0.0, *itertools.accumulate(steps)]
    return max(range(len(steps) - seconds + 1), key=lambda i: covered[i + seconds] - covered[i])

"""Simulated vehicles and fleets that publish signed telemetry like real cars."""

from importlib import resources
from pathlib import Path


def data_file(name: str) -> Path:
    """A file carried in ``simulators/data`` (see its ATTRIBUTION.md)."""
    return Path(str(resources.files("simulators").joinpath("data", name)))

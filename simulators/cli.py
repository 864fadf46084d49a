"""`motus sim ...`: simulated hardware for trying the agent without a car."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import typer

from protocol.envelope import Location
from simulators.drive_cycles import CAR_CYCLES, drive_cycle
from simulators.vehicle import LiveVehicle, SimulatedVehicle

app = typer.Typer(help="Simulated hardware: an ELM327 adapter or a GPS receiver on a pty, a fleet.",
                  no_args_is_help=True)

CYCLE = typer.Option("WLTC", help=f"Drive cycle: {', '.join(CAR_CYCLES)}.")
SPEEDUP = typer.Option(1.0, help="Simulated seconds per real second.")
LAT = typer.Option(48.1372, help="Start latitude.")
LON = typer.Option(11.5756, help="Start longitude.")
PORT_FILE = typer.Option(None, help="Also write the pty's path to this file.")


def _vehicle(cycle: str, speedup: float, lat: float, lon: float, electric: bool = False) -> LiveVehicle:
    try:
        profile = drive_cycle(cycle)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from exc
    model = SimulatedVehicle(profile, start=Location(latitude=lat, longitude=lon), heading_deg=0.0,
                             odometer_km=42_000.0, electric=electric)
    return LiveVehicle(model, time.monotonic, speedup=speedup)


def _announce(port: str, port_file: Path | None) -> None:
    if port_file is not None:
        port_file.write_text(port + "\n")
    typer.echo(port)


def _wait_for_signal() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@app.command()
def elm327(
    cycle: str = CYCLE,
    speedup: float = SPEEDUP,
    protocol: str = typer.Option("6", help="OBD-II bus: 3-5 (ISO 9141/KWP) or 6-9 (CAN)."),
    vin: str = typer.Option("WMWZZZ3CZ8E123456", help="VIN the engine ECU reports."),
    dtc: list[str] = typer.Option([], help="Stored trouble codes, e.g. P0301."),
    electric: bool = typer.Option(False, help="A battery-electric car (state of charge, no rpm)."),
    echo_stuck: bool = typer.Option(False, help="Clone quirk: ignore ATE0."),
    delay_ms: float = typer.Option(0.0, help="Clone quirk: answer this much later."),
    lat: float = LAT,
    lon: float = LON,
    port_file: Path | None = PORT_FILE,
) -> None:
    """An ELM327 adapter in a car driving CYCLE, on a pseudo-terminal: prints the port to open."""
    from simulators.ecu import EmulatedEcu
    from simulators.elm327_emulator import Elm327Emulator, PtyElm327, Quirks

    car = _vehicle(cycle, speedup, lat, lon, electric)
    ecu = EmulatedEcu(values=car.obd_values, vin=vin, dtcs=list(dtc))
    emulator = Elm327Emulator([ecu], protocol=protocol,
                              quirks=Quirks(echo_stuck=echo_stuck, reply_delay_s=delay_ms / 1000))
    stop = _wait_for_signal()
    with PtyElm327(emulator) as pty:
        _announce(pty.port, port_file)
        stop.wait()


@app.command()
def nmea(
    cycle: str = CYCLE,
    speedup: float = SPEEDUP,
    rate_hz: float = typer.Option(1.0, help="Fixes per second."),
    lat: float = LAT,
    lon: float = LON,
    port_file: Path | None = PORT_FILE,
) -> None:
    """A GPS receiver (NMEA 0183 GGA + RMC) riding in a car driving CYCLE, on a pseudo-terminal."""
    from simulators.nmea import PtyNmea, sentences

    car = _vehicle(cycle, speedup, lat, lon)
    receiver = PtyNmea()
    stop = _wait_for_signal()
    _announce(receiver.port, port_file)
    try:
        receiver.feed_from(lambda: sentences(car.advance(), datetime.now(UTC)), 1.0 / rate_hz, stop)
    finally:
        receiver.close()

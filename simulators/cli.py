"""`motus sim ...`: simulated hardware for trying the agent without a car."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from protocol.envelope import Location
from simulators.drive_cycles import CAR_CYCLES, drive_cycle
from simulators.vehicle import LiveVehicle, SimulatedVehicle

app = typer.Typer(help="Simulated hardware: an ELM327 adapter or a GPS receiver on a pty.",
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


@app.command()
def fleet(
    cars: int = typer.Option(10, min=1, max=10_000, help="Cars, each a registered device of its own."),
    rate: float = typer.Option(100.0, min=0.1, help="Events per second, the whole fleet together."),
    seconds: float = typer.Option(60.0, min=1, help="How long to publish."),
    seed: int = typer.Option(1, help="Makes the fleet (keys, VINs, routes) reproducible."),
) -> None:
    """Register CARS simulated cars (MOTUS_* settings, as `motus device register`) and publish
    their drives over MQTT/TLS at RATE events per second: a load for the ingest."""
    import psycopg

    from broker_config.admin import BrokerAdmin, BrokerAdminError
    from motus.device_cli import ProvisioningSettings
    from motus.provisioning import ProvisioningError, provision_fleet
    from simulators.fleet import BrokerRefused, Publisher, make_fleet, publish_paced

    settings = ProvisioningSettings()
    fleet_cars = make_fleet(cars, seed=seed, drive_seconds=int(seconds * rate / cars) + 2)
    try:
        with psycopg.connect(settings.database_url) as conn, BrokerAdmin(settings.admin_endpoint()) as admin:
            provision_fleet(conn, admin, fleet_cars, lambda i: f"fleet-{seed}-{i}@motus.example")
    except (psycopg.Error, BrokerAdminError, ProvisioningError) as exc:
        typer.echo(f"error: cannot register the fleet: {exc}", err=True)
        raise typer.Exit(1) from exc
    endpoint = settings.device_endpoint()
    publisher = Publisher(lambda car: endpoint.model_copy(
        update={"username": car.device_id, "password": car.mqtt_password}))
    try:
        run = publish_paced(publisher, fleet_cars, events_per_s=rate, seconds=seconds,
                            start=datetime.now(UTC) - timedelta(seconds=seconds))
    except (BrokerRefused, TimeoutError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        publisher.close()
    typer.echo(f"published {run.published} events from {cars} cars in {run.seconds:.1f} s "
               f"({run.published / run.seconds:.0f}/s; at most {run.max_lag_s:.2f} s behind schedule)")

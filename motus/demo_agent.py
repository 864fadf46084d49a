"""The demo's agent car: a car whose ELM327 adapter and GPS receiver are emulated on ptys, read
by the real in-car agent (`motus agent run`, its own process) and sent through the network."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker_config.admin import BrokerAdmin
from device_agent.spool import Spool
from motus.provisioning import ProvisionedDevice, provision_device, write_agent_files
from motus.stack import StackInfo
from protocol.envelope import Location
from protocol.signing import public_key_bytes
from simulators.drive_cycles import drive_cycle
from simulators.ecu import EmulatedEcu
from simulators.elm327_emulator import Elm327Emulator, PtyElm327, Quirks
from simulators.nmea import PtyNmea, sentences
from simulators.vehicle import LiveVehicle, SimulatedVehicle

AGENT_SIGNALS = ("speed = 5, powertrainCombustionEngineSpeed = 5, powertrainCombustionEngineECT = 1, "
                 "powertrainFuelSystemRelativeLevel = 1, powertrainTransmissionTravelledDistance = 1")


def provision_agent_device(
    info: StackInfo, directory: Path, email: str, vin: str, *, database_url: str | None = None
) -> tuple[ProvisionedDevice, Ed25519PrivateKey, Path]:
    """Register a device the way `motus device register` does; returns its agent.toml."""
    key = Ed25519PrivateKey.generate()
    with (psycopg.connect(database_url or info.database_url) as conn,
          BrokerAdmin(info.admin_endpoint) as admin):
        device = provision_device(conn, admin, email=email, public_key=public_key_bytes(key), vin=vin)
    endpoint = info.device_endpoint(device.device_id, device.credential.password, tls=True)
    return device, key, write_agent_files(directory, device, endpoint, key)


@dataclass
class AgentCarOutcome:
    device_id: str
    readings_by_name: dict[str, int]
    left_in_spool: int
    adapter_line: str

    @property
    def ok(self) -> bool:
        return self.left_in_spool == 0 and {"speed", "currentLocationCoordinates", "obdDTCList"} <= set(
            self.readings_by_name)


def run_agent_car(info: StackInfo, workdir: Path, seconds: float, tag: str) -> AgentCarOutcome:
    directory = workdir / f"agent-car-{tag}"
    vin = f"WMW{tag.upper():0>8}"[:11] + "123456"
    device, _key, config = provision_agent_device(info, directory, f"agent-driver-{tag}@motus.example", vin)
    model = SimulatedVehicle(drive_cycle("CADC Urban"), start=Location(latitude=48.1372, longitude=11.5756),
                             heading_deg=0.0, odometer_km=58_000.0)
    # Real time: sped up, the GPS and odometer would run ahead of the speed's time integral, and
    # the proof of movement would rightly call the story inconsistent.
    car = LiveVehicle(model, time.monotonic, speedup=1)
    emulator = Elm327Emulator([EmulatedEcu(values=car.obd_values, vin=vin, dtcs=["P0420"])],
                              quirks=Quirks(echo_stuck=True))  # a cheap clone
    receiver = PtyNmea()
    stop = threading.Event()
    feeding = threading.Thread(target=receiver.feed_from, daemon=True,
                               args=(lambda: sentences(car.advance(), datetime.now(UTC)), 0.2, stop))
    log_path = directory / "agent.log"
    try:
        with PtyElm327(emulator) as adapter:
            with config.open("a") as out:
                out.write(f'\n[spool]\npath = "spool.sqlite"\n\n[sources.elm327]\nport = "{adapter.port}"\n'
                          f"signals = {{ {AGENT_SIGNALS} }}\n\n[sources.gps]\nport = \"{receiver.port}\"\n")
            feeding.start()
            with log_path.open("ab") as log:
                command = [sys.executable, "-m", "motus", "agent", "run", "--config", str(config)]
                agent = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
                time.sleep(seconds)
                agent.terminate()
                agent.wait(timeout=30)
    finally:
        stop.set()
        receiver.close()
    spool = Spool(directory / "spool.sqlite", max_bytes=1 << 30)
    left = spool.stats().events
    spool.close()
    log_lines = log_path.read_text(errors="replace").splitlines()
    adapter_line = next((line.split(" INFO ", 1)[-1] for line in log_lines if "ECUs" in line),
                        "the adapter never answered")
    return AgentCarOutcome(device.device_id, {}, left, adapter_line)


def stored_readings(database_url: str, device_id: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT name, count(*) FROM (SELECT name FROM signals_numeric WHERE device_id = %(d)s "
            "UNION ALL SELECT name FROM signals_text WHERE device_id = %(d)s "
            "UNION ALL SELECT name FROM signals_location WHERE device_id = %(d)s) s GROUP BY name",
            {"d": device_id}).fetchall()
    return {str(name): int(count) for name, count in rows}

"""The demo's agent car: a car whose ELM327 adapter and GPS receiver are emulated on ptys, read
by the real in-car agent (`motus agent run`, its own process) and sent through the network."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from device_agent.config import Elm327Section, GpsSection, SourcesSection, SpoolSection
from device_agent.spool import Spool
from protocol.envelope import Location
from simulators.drive_cycles import drive_cycle
from simulators.ecu import EmulatedEcu
from simulators.elm327_emulator import Elm327Emulator, PtyElm327, Quirks
from simulators.nmea import PtyNmea, sentences
from simulators.vehicle import LiveVehicle, SimulatedVehicle
from stack.devices import provision_agent
from stack.local import StackInfo
from stack.services import spawn

#: What the agent car polls, and how often per second.
AGENT_SIGNALS = {"speed": 5, "powertrainCombustionEngineSpeed": 5, "powertrainCombustionEngineECT": 1,
                 "powertrainFuelSystemRelativeLevel": 1, "powertrainTransmissionTravelledDistance": 1}


@dataclass
class AgentCarOutcome:
    device_id: str
    left_in_spool: int
    adapter_line: str
    readings_by_name: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.left_in_spool == 0 and {"speed", "currentLocationCoordinates", "obdDTCList"} <= set(
            self.readings_by_name)


def run_agent_car(info: StackInfo, workdir: Path, seconds: float, tag: str) -> AgentCarOutcome:
    directory = workdir / f"agent-car-{tag}"
    vin = f"WMW{tag.upper():0>8}"[:11] + "123456"
    agent_device = provision_agent(info, directory, f"agent-driver-{tag}@motus.example", vin)
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
            config = agent_device.write(
                SourcesSection(elm327=Elm327Section(port=adapter.port, signals=AGENT_SIGNALS),
                               gps=GpsSection(port=receiver.port)),
                spool=SpoolSection(path=Path("spool.sqlite")))
            feeding.start()
            agent = spawn("agent", ["agent", "run", "--config", str(config)], os.environ, log_path)
            time.sleep(seconds)
            agent.stop(timeout_s=30)
    finally:
        stop.set()
        receiver.close()
    spool = Spool(directory / "spool.sqlite", max_bytes=1 << 30)
    left = spool.stats().events
    spool.close()
    adapter_line = next((line.split(" INFO ", 1)[-1] for line in agent.log_text(0).splitlines()
                         if "ECUs" in line), "the adapter never answered")
    return AgentCarOutcome(agent_device.device_id, left, adapter_line)

"""The demo's agent car: a car whose ELM327 adapter and GPS receiver are emulated on ptys, read
by the real in-car agent (`motus agent run`, its own process) and sent through the network."""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from device_agent.config import Elm327Section, GpsSection, SourcesSection, SpoolSection
from device_agent.spool import Spool
from protocol.envelope import Location
from simulators.drive_cycles import busiest_stretch, drive_cycle
from simulators.ecu import EmulatedEcu
from simulators.elm327_emulator import Elm327Emulator, PtyElm327, Quirks
from simulators.nmea import PtyNmea, sentences
from simulators.vehicle import LiveVehicle, SimulatedVehicle
from stack.devices import provision_agent
from stack.local import StackInfo
from stack.services import spawn

#: The agent car's drive: the whole Artemis cycle (town, country road, motorway), which it has
#: been driving for a while when the agent starts reading: read at real time for the demo's few
#: seconds, a town drive would be too short to prove (its standstill at the start reads "still,
#: 0.00 km"; its busiest half minute covers 0.4 km, less than the proof's 0.5 km, docs/movement.md).
AGENT_CYCLE = "CADC"
#: Seconds the car drives beyond the agent's run: the agent's start-up and stop.
AGENT_SLACK_S = 5
#: Longest the agent may take to send its first request to the adapter.
AGENT_START_S = 30.0
#: Longest the agent may take to stop (it delivers what it read first).
AGENT_STOP_S = 30.0
#: Provisioning the car's device and starting its emulated adapter and GPS (generous).
AGENT_SETUP_S = 15.0


def agent_car_span_s(seconds: float) -> float:
    """The longest a ``run_agent_car`` of ``seconds`` may read the car, from its call to the
    agent's stop: what must fit in one UTC day for its drive to be proved on one day."""
    return AGENT_SETUP_S + AGENT_START_S + seconds + AGENT_SLACK_S + AGENT_STOP_S

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


def agent_car_model(seconds: float) -> SimulatedVehicle:
    """The agent car as the agent finds it: driven, from the start of AGENT_CYCLE, up to the
    stretch that covers the most distance in the agent's ``seconds`` (and AGENT_SLACK_S), so
    its odometer, position, coolant and fuel have moved on with it."""
    cycle = drive_cycle(AGENT_CYCLE)
    model = SimulatedVehicle(cycle, start=Location(latitude=48.1372, longitude=11.5756),
                             heading_deg=0.0, odometer_km=58_000.0)
    for _ in range(busiest_stretch(cycle, math.ceil(seconds) + AGENT_SLACK_S)):
        model.step(1.0)
    return model


def run_agent_car(info: StackInfo, workdir: Path, seconds: float, tag: str, *,
                  database_url: str | None = None) -> AgentCarOutcome:
    """Drive the agent car with `motus agent run` reading it for ``seconds``; its device is
    registered on the stack's database, or ``database_url`` on the stack's server."""
    directory = workdir / f"agent-car-{tag}"
    vin = f"WMW{tag.upper():0>8}"[:11] + "123456"
    agent_device = provision_agent(info, directory, f"agent-driver-{tag}@motus.example", vin,
                                   database_url=database_url)
    # Real time: sped up, the GPS and odometer would run ahead of the speed's time integral, and
    # the proof of movement would rightly call the story inconsistent.
    car = LiveVehicle(agent_car_model(seconds), time.monotonic, speedup=1)
    asked = threading.Event()

    def obd_values() -> dict[str, float]:
        asked.set()  # the agent's first request: it is reading the car
        return car.obd_values()

    emulator = Elm327Emulator([EmulatedEcu(values=obd_values, vin=vin, dtcs=["P0420"])],
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
            # The seconds count from the agent's first request, not its launch: however long it
            # takes to start, it reads the car over as much road.
            deadline = time.monotonic() + AGENT_START_S
            while not asked.wait(0.1) and agent.running and time.monotonic() < deadline:
                pass
            time.sleep(seconds)
            agent.stop(timeout_s=AGENT_STOP_S)
    finally:
        stop.set()
        receiver.close()
    spool = Spool(directory / "spool.sqlite", max_bytes=1 << 30)
    left = spool.stats().events
    spool.close()
    adapter_line = next((line.split(" INFO ", 1)[-1] for line in agent.log_text(0).splitlines()
                         if "ECUs" in line), "the adapter never answered")
    return AgentCarOutcome(agent_device.device_id, left, adapter_line)

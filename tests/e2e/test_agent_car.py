"""A car through the real agent: an ELM327 emulator and a GPS receiver on ptys, `motus agent run`
reading them, the broker, the ingest and the database."""

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from device_agent.config import Elm327Section, GpsSection
from protocol.envelope import Location
from simulators.drive_cycles import drive_cycle
from simulators.ecu import EmulatedEcu
from simulators.elm327_emulator import Elm327Emulator, PtyElm327
from simulators.nmea import PtyNmea, sentences
from simulators.vehicle import LiveVehicle, SimulatedVehicle
from stack.probes import readings_by_name
from tests.fixtures.agent import AgentProcess, provision_agent
from tests.fixtures.helpers import scalar, wait_until


def test_elm327_and_gps_readings_reach_the_database(
        local_stack, database_url, running_ingest, tmp_path: Path):
    device = provision_agent(local_stack, database_url, tmp_path, "car@test.example")
    model = SimulatedVehicle(drive_cycle("CADC Urban"), start=Location(latitude=45.46, longitude=9.19),
                             heading_deg=0, odometer_km=31_000.0)
    car = LiveVehicle(model, time.monotonic, speedup=10)
    emulator = Elm327Emulator([EmulatedEcu(values=car.obd_values, vin="JH4KA7561PC008269", dtcs=["P0171"])])
    receiver = PtyNmea()
    stop = threading.Event()
    gps = threading.Thread(target=receiver.feed_from, daemon=True,
                           args=(lambda: sentences(car.advance(), datetime.now(UTC)), 0.2, stop))
    with PtyElm327(emulator) as adapter:
        device.write_config(
            broker_reachable=True,
            elm327=Elm327Section(port=adapter.port, signals={
                "speed": 5, "powertrainCombustionEngineSpeed": 5,
                "powertrainTransmissionTravelledDistance": 1}),
            gps=GpsSection(port=receiver.port))
        gps.start()
        agent = AgentProcess(device)
        try:
            wanted = {"speed", "powertrainCombustionEngineSpeed", "powertrainTransmissionTravelledDistance",
                      "obdDTCList", "currentLocationCoordinates", "dimoAftermarketNSAT"}

            def every_source() -> bool:
                counts = readings_by_name(database_url, device.device_id)
                return wanted <= {n for n, c in counts.items() if c >= 3 or n == "obdDTCList"}

            wait_until(every_source, 30, "readings from every source")
        finally:
            agent.stop()
            stop.set()
            gps.join(timeout=5)
            receiver.close()
    counts = readings_by_name(database_url, device.device_id)
    assert counts["speed"] >= counts["powertrainTransmissionTravelledDistance"]
    dtcs = scalar(database_url, "SELECT value FROM signals_text WHERE device_id = %s AND name = 'obdDTCList' "
                  "LIMIT 1", (device.device_id,))
    assert isinstance(dtcs, str) and json.loads(dtcs) == ["P0171"]
    assert scalar(database_url, "SELECT count(*) FROM quarantine") == 0
    status = subprocess.run([sys.executable, "-m", "motus", "agent", "status", "--config", str(device.config),
                             "--json"], capture_output=True, text=True, check=True)
    assert json.loads(status.stdout)["events"] == 0  # everything sent was acknowledged and deleted
    assert "ELM327 v1.5 on ISO 15765-4 CAN" in agent.log_text()

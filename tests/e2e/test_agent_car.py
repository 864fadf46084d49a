"""A car through the real agent: an ELM327 emulator and a GPS receiver on ptys, `motus agent run`
reading them, the broker, the ingest, the database and the proof of movement."""

import json
import secrets
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from device_agent.config import Elm327Section, GpsSection
from motus.demo import AGENT_CAR_SECONDS
from motus.demo_agent import agent_car_span_s, run_agent_car
from motus.demo_movement import wait_for_one_day
from movement.proof import Proof, Verdict
from movement.store import days_between, prove_day
from protocol.envelope import Location
from simulators.drive_cycles import drive_cycle
from simulators.ecu import EmulatedEcu
from simulators.elm327_emulator import Elm327Emulator, PtyElm327
from simulators.nmea import PtyNmea, sentences
from simulators.vehicle import LiveVehicle, SimulatedVehicle
from stack.probes import poll_until, readings_by_name
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


def test_the_demos_agent_car_is_proved_to_have_moved(local_stack, database_url, running_ingest,
                                                      tmp_path: Path):
    """The demo's agent car, for the demo's time at real time: what the agent delivered is
    proved (movement/, as `motus movement prove` does) a drive, its three measures agreeing."""
    time.sleep(wait_for_one_day(datetime.now(UTC), agent_car_span_s(AGENT_CAR_SECONDS)))  # one day's drive
    started = datetime.now(UTC)
    outcome = run_agent_car(local_stack, tmp_path, AGENT_CAR_SECONDS, secrets.token_hex(4),
                            database_url=database_url)
    assert outcome.left_in_spool == 0
    assert "ECUs 7E8" in outcome.adapter_line
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT vehicle_id FROM devices WHERE id = %s", (outcome.device_id,)).fetchone()
    assert row is not None
    vehicle = row[0]
    proofs: list[Proof] = []

    def proved_moved() -> bool:  # the ingest may still be committing the agent's last events
        with psycopg.connect(database_url) as conn:
            proofs[:] = [p for day in days_between(started.date(), datetime.now(UTC).date())
                         for p in prove_day(conn, day) if p.vehicle_id == vehicle]
        return bool(proofs) and proofs[-1].verdict is Verdict.MOVED

    poll_until(proved_moved, 30, interval_s=1.0)
    assert proofs, "no proof for the agent car's day: nothing it read was stored"
    proof = proofs[-1]
    m = proof.measures
    story = (f"{proof.verdict} {proof.distance_km} km (gps {m.gps_km}, odometer {m.odometer_km}, "
             f"speed {m.speed_km}); reasons {list(proof.reasons)}; "
             + "; ".join(f"{c.name}: {c.detail}" for c in proof.checks if not c.passed))
    assert proof.verdict is Verdict.MOVED, story
    assert not proof.reasons, story
    assert proof.distance_km is not None and proof.distance_km > 0, story
    assert None not in (m.gps_km, m.odometer_km, m.speed_km), story  # all three measures, agreeing

"""Car -> Mosquitto -> `motus ingest run` -> PostgreSQL -> `motus api serve`, all real processes."""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from motus.stack import free_port
from protocol.catalog import load_catalog
from simulators.fleet import drive_events, make_fleet
from simulators.hostile import hostile_messages
from tests.fixtures.helpers import publisher, register, scalar, wait_until

pytestmark = pytest.mark.e2e


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def reachable(url):
    try:
        get_json(url)
    except OSError:
        return False
    return True


@pytest.fixture
def services(local_stack, ingest_settings, tmp_path):
    api_port = free_port()
    env = {**os.environ, **local_stack.env(), "MOTUS_DATABASE_URL": ingest_settings.database_url,
           "MOTUS_INGEST_GROUP": ingest_settings.ingest_group,
           "MOTUS_INGEST_CLIENT_ID": ingest_settings.ingest_client_id,
           "MOTUS_API_PORT": str(api_port)}
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("ingest", "api")}
    processes = {
        name: subprocess.Popen([sys.executable, "-m", "motus", *args], env=env,
                               stdout=logs[name], stderr=subprocess.STDOUT)
        for name, args in (("ingest", ["ingest", "run"]), ("api", ["api", "serve"]))
    }
    base = f"http://127.0.0.1:{api_port}"
    try:
        wait_until(lambda: "ingesting from" in (tmp_path / "ingest.log").read_text(), 60,
                   "ingest to subscribe")
        wait_until(lambda: reachable(f"{base}/healthz"), 60, "the API to listen")
        yield base, processes, tmp_path
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        for log in logs.values():
            log.close()


def test_signed_readings_arrive_at_the_api_with_values_units_and_timestamps(
    local_stack, ingest_settings, services
):
    base, processes, logdir = services
    database_url = ingest_settings.database_url
    cars = make_fleet(3, seed=41, drive_seconds=120)
    vehicles = register(database_url, cars, local_stack)
    start = datetime.now(UTC) - timedelta(seconds=121)
    cars_publisher = publisher(local_stack, tls=True)  # as real devices: MQTT over TLS
    last_payloads = {}
    for car in cars:
        for topic, payload in drive_events(car, start, 120):
            cars_publisher.publish(car, topic, payload)
            last_payloads[car.device_id] = payload
    cars_publisher.close()
    wait_until(lambda: scalar(database_url, "SELECT count(*) FROM telemetry_events") == 360, 60,
               "all events committed")

    catalog = load_catalog()
    for car, vehicle in zip(cars, vehicles, strict=True):
        body = get_json(f"{base}/v1/vehicles/{vehicle}/signals/latest")
        sent = json.loads(last_payloads[car.device_id])["data"]["signals"]
        got = {s["name"]: s for s in body["signals"]}
        assert len(got) == len(sent) == 10
        for reading in sent:
            entry = got[reading["name"]]
            assert entry["value"] == reading["value"]
            assert entry["unit"] == catalog[reading["name"]].unit
            assert datetime.fromisoformat(entry["timestamp"]) == datetime.fromisoformat(
                reading["timestamp"])
        assert got["speed"]["unit"] == "km/h"
        assert got["powertrainTransmissionTravelledDistance"]["value"] == pytest.approx(
            car.vehicle.state.odometer_km, abs=0.001)

    processes["ingest"].send_signal(signal.SIGTERM)
    assert processes["ingest"].wait(timeout=30) == 0
    summary = (logdir / "ingest.log").read_text()
    assert "stored 360 (3600 readings), duplicates 0, quarantined 0" in summary


def test_demo_runs_the_whole_path_and_reports_it(stack_dir):
    result = subprocess.run(
        [sys.executable, "-m", "motus", "demo", "--cars", "2", "--seconds", "30",
         "--dir", str(stack_dir)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "published over MQTT/TLS 60 signed events (600 readings) from 2 cars" in out
    assert "ingested (stored once)             │   1860" in out  # the fleet's 60 and the spoofs' 1800
    assert "redelivered by the broker, dropped │      0" in out
    two = make_fleet(2, seed=1, drive_seconds=1)
    corpus = hostile_messages(two[0], two[1], datetime.now(UTC))
    assert f"rejected into quarantine           │     {len(corpus) + 1}" in out
    assert "  replayed                         │      1" in out
    assert "(expected" not in out
    assert "ALLOWED" not in out
    # the proof of movement: every spoof refused for what it planted, no honest car refused
    assert "published 1800 signed events from 3 spoofing cars" in out
    for spoof, reason in (("gps_teleport", "impossible_jump"), ("odometer_rollback", "odometer_rollback"),
                          ("fake_speed_parked", "speed_while_still")):
        assert re.search(rf"spoof: {spoof}\s+│ refused .*│ {reason}", out), spoof
    assert re.search(r"fleet car 1\s+│ (still|moved) ", out)
    assert re.search(r"the agent car\s+│ (still|moved|insufficient) ", out)
    assert "│ revoked while connected: cut off  │ Administrative action │" in out
    assert out.count("Not authorized") == 5
    assert "powertrainTransmissionTravelledDistance" in out

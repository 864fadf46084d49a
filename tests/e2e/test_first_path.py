"""Car -> Mosquitto -> `motus ingest run` -> PostgreSQL -> `motus api serve`, all real processes."""

import json
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from protocol.catalog import load_catalog
from registry.keys import create_personal_token
from simulators.fleet import drive_events, make_fleet
from simulators.hostile import hostile_messages
from stack.services import start_api, start_ingest
from tests.fixtures.helpers import publisher, register, scalar, wait_until

pytestmark = pytest.mark.e2e


def get_json(url, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
        return json.loads(response.read())


def owner_token(database_url, email):
    with psycopg.connect(database_url) as conn:
        return create_personal_token(conn, email, "e2e", datetime.now(UTC))[1]


@pytest.fixture
def services(local_stack, ingest_settings, tmp_path):
    settings = {"database_url": ingest_settings.database_url, "ingest_group": ingest_settings.ingest_group,
                "ingest_client_id": ingest_settings.ingest_client_id}
    with start_ingest(local_stack, tmp_path / "ingest.log", settings=settings) as ingest, \
            start_api(local_stack, tmp_path / "api.log",
                      settings={"database_url": ingest_settings.database_url}) as api:
        yield f"http://127.0.0.1:{api.ports['http']}", ingest


def test_signed_readings_arrive_at_the_api_with_values_units_and_timestamps(
    local_stack, ingest_settings, services
):
    base, ingest = services
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
    for i, (car, vehicle) in enumerate(zip(cars, vehicles, strict=True)):
        token = owner_token(database_url, f"owner{i}@test.example")
        body = get_json(f"{base}/v1/vehicles/{vehicle}/signals/latest", token)
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

    assert ingest.stop() == 0
    assert "stored 360 (3600 readings), duplicates 0, quarantined 0" in ingest.log_text()


def test_demo_runs_the_whole_path_and_reports_it(stack_dir, stack_path_args):
    result = subprocess.run(
        [sys.executable, "-m", "motus", "demo", "--cars", "2", "--seconds", "30",
         "--dir", str(stack_dir), "--json", *stack_path_args],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "published over MQTT/TLS 60 signed events (600 readings) from 2 cars" in result.stderr
    assert "published 1800 signed events from 3 spoofing cars" in result.stderr
    report = json.loads(result.stdout)  # stdout holds the report alone
    assert report["ok"] is True
    two = make_fleet(2, seed=1, drive_seconds=1)
    corpus = hostile_messages(two[0], two[1], datetime.now(UTC))
    events_with_a_bad_reading = sum(1 for m in corpus if m.event_stored)
    # the fleet's 60, the spoofs' 1800, and the hostile events stored without their bad reading
    assert report["published"] == report["stored"] == 1860 + events_with_a_bad_reading
    assert report["resent"] >= 1  # the event sent twice, stored once
    assert sum(report["quarantined"].values()) == len(corpus)
    assert "replayed" not in report["quarantined"]
    assert report["quarantined"] == report["expected_quarantine"]
    # the proof of movement: every spoof refused for what it planted, no honest car refused
    verdicts = {row["car"]: row for row in report["movement"]}
    for spoof, reason in (("gps_teleport", "impossible_jump"), ("odometer_rollback", "odometer_rollback"),
                          ("fake_speed_parked", "speed_while_still")):
        assert verdicts[f"spoof: {spoof}"]["verdict"] == "refused"
        assert reason in verdicts[f"spoof: {spoof}"]["reasons"], spoof
    assert verdicts["fleet car 1"]["verdict"] in ("still", "moved")
    assert verdicts["the agent car"]["verdict"] in ("still", "moved", "insufficient")
    said = {row["attempt"]: row["broker_said"] for row in report["broker_refusals"]}
    assert said["revoked while connected: cut off"] == "Administrative action"
    assert list(said.values()).count("Not authorized") == 5
    assert report["agent_car"]["ok"] is True
    names = {s["name"] for s in report["latest"]["signals"]}
    assert "powertrainTransmissionTravelledDistance" in names

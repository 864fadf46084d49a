"""Proof of movement through the database: scenarios stored by the ingest's own store, proved by
the SQL driver and `motus movement prove`, verdicts read back from movement_proofs."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from uuid import UUID

import psycopg
import pytest

from ingest.pipeline import Accepted, process_message
from ingest.store import TelemetryStore
from movement.store import prove_day
from protocol.catalog import load_catalog
from registry.directory import DeviceDirectory
from simulators.fleet import SimCar
from tests.fixtures.helpers import register
from tests.fixtures.scenarios import START, all_scenarios

pytestmark = pytest.mark.integration

DAY = START.date()
NOW = START + timedelta(hours=2)


def store_scenarios(database_url: str) -> dict[str, set[UUID]]:
    """Register every scenario's cars, store their events; return each scenario's vehicles."""
    scenarios = all_scenarios()
    cars: dict[str, SimCar] = {}
    for scenario in scenarios:
        for car in scenario.cars:
            cars.setdefault(car.device_id, car)
    vehicles = dict(zip(cars, register(database_url, list(cars.values())), strict=True))
    catalog = load_catalog()
    store = TelemetryStore(database_url)
    with psycopg.connect(database_url) as conn:
        directory = DeviceDirectory(conn)
        for scenario in scenarios:
            accepted = []
            for _car, topic, payload in scenario.events:
                outcome = process_message(topic, payload, directory.lookup, catalog, NOW)
                assert isinstance(outcome, Accepted), outcome
                accepted.append(outcome)
            for first in range(0, len(accepted), 1000):
                store.write(accepted[first:first + 1000], [])
    store.close()
    return {s.name: {vehicles[car.device_id] for car in s.cars} for s in scenarios}


@pytest.fixture(scope="module")
def database_url(module_database_url):
    return module_database_url


@pytest.fixture(scope="module")
def proved(database_url):
    by_scenario = store_scenarios(database_url)
    with psycopg.connect(database_url) as conn:
        prove_day(conn, DAY - timedelta(days=1))
        prove_day(conn, DAY)
    return by_scenario


def verdicts(database_url: str, day) -> dict[UUID, tuple[str, list[str], float | None]]:
    with psycopg.connect(database_url) as conn:
        return {row[0]: (row[1], row[2], row[3]) for row in conn.execute(
            "SELECT vehicle_id, verdict, reasons, distance_km FROM movement_proofs WHERE day = %s",
            (day,))}


def test_every_spoof_refused_every_honest_drive_accepted_from_the_database(database_url, proved):
    today = verdicts(database_url, DAY)
    expected = {"gps_teleport": "impossible_jump", "cloned_device": "two_places_at_once",
                "odometer_rollback": "odometer_rollback", "fake_speed_parked": "speed_while_still",
                "emulator_farm": "identical_trace", "replayed_trip": "replayed_trace"}
    for name, vehicles in proved.items():
        for vehicle in vehicles:
            verdict, reasons, distance = today[vehicle]
            if name.startswith("honest_"):
                assert verdict == "moved" and not reasons and distance and distance > 1, (name, reasons)
            else:
                assert verdict == "refused" and expected[name] in reasons, (name, verdict, reasons)
    yesterday = verdicts(database_url, DAY - timedelta(days=1))
    (replayed,) = proved["replayed_trip"]
    assert list(yesterday) == [replayed] and yesterday[replayed][0] == "moved"


def test_proving_a_day_again_replaces_it_and_keeps_fingerprints_per_day(database_url, proved):
    with psycopg.connect(database_url) as conn:
        before = conn.execute("SELECT count(*) FROM movement_fingerprints WHERE day = %s", (DAY,)).fetchone()
        again = prove_day(conn, DAY)
        after = conn.execute("SELECT count(*) FROM movement_fingerprints WHERE day = %s", (DAY,)).fetchone()
        proofs = conn.execute("SELECT count(*) FROM movement_proofs WHERE day = %s", (DAY,)).fetchone()
    assert before == after and before is not None and before[0] > 100
    assert proofs is not None and proofs[0] == len(again) == sum(len(v) for v in proved.values())


def test_cli_proves_a_day_and_reports_json(database_url, proved):
    result = subprocess.run(
        [sys.executable, "-m", "motus.cli", "movement", "prove", "--day", DAY.isoformat(), "--json"],
        env={"MOTUS_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_vehicle = {UUID(p["vehicle_id"]): p for p in lines}
    (teleport,) = proved["gps_teleport"]
    assert by_vehicle[teleport]["verdict"] == "refused"
    assert any(c["name"] == "no_impossible_jump" and not c["passed"] for c in by_vehicle[teleport]["checks"])
    assert sum(p["verdict"] == "moved" for p in lines) == sum(
        len(v) for k, v in proved.items() if k.startswith("honest_"))


def test_cli_refuses_a_malformed_day(database_url):
    result = subprocess.run(
        [sys.executable, "-m", "motus.cli", "movement", "prove", "--day", "2026-13-01"],
        env={"MOTUS_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2 and "is not a day" in result.stderr

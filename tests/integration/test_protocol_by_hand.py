"""Follow docs/protocol.md's shell recipe literally: openssl + mosquitto_pub, no Motus code."""

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from protocol.signing import device_id_for
from registry.store import add_vehicle
from tests.fixtures.helpers import scalar, wait_until

pytestmark = pytest.mark.integration
DOC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()


def recipe(name: str) -> str:
    match = re.search(rf"<!-- recipe:{name} -->\n```sh\n(.*?)\n```", DOC, re.S)
    assert match, name
    return match.group(1)


def test_an_event_made_by_hand_from_the_docs_is_ingested(
    local_stack, database_url, running_ingest, tmp_path
):
    def sh(script: str, **env: str) -> str:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, **env})
        assert result.returncode == 0, result.stderr
        return result.stdout

    public_key = base64.b64decode(sh(recipe("keygen")).strip())
    assert len(public_key) == 32
    env = {**local_stack.env(), "MOTUS_DATABASE_URL": database_url,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    # registration without --vehicle, then the owner pairs a vehicle (as the API will do)
    sh(recipe("register") + "\n" + recipe("publish"), **env)
    device = json.loads((tmp_path / "device.json").read_text())
    assert device["device_id"] == device_id_for(public_key)
    assert oct((tmp_path / "device" / "agent.toml").stat().st_mode & 0o777) == "0o600"
    wait_until(lambda: scalar(database_url, "SELECT count(*) FROM quarantine") == 1,
               what="the unpaired device's event to be quarantined")
    assert scalar(database_url, "SELECT reason FROM quarantine") == "unpaired_device"
    with psycopg.connect(database_url) as conn:
        owner = scalar(database_url, "SELECT owner_id FROM devices")
        vehicle = add_vehicle(conn, UUID(str(owner)), vin="1M8GDM9AXKP042788")
        conn.execute("UPDATE devices SET vehicle_id = %s", (vehicle,))
    sh(recipe("publish"), **env, DEVICE_ID=device["device_id"],
       MQTT_PASSWORD=device["mqtt_password"])
    wait_until(lambda: scalar(database_url, "SELECT count(*) FROM telemetry_events") == 1,
               what="the hand-made event to be stored")
    assert scalar(database_url, "SELECT count(*) FROM quarantine") == 1
    assert scalar(database_url,
                  "SELECT value FROM signals_numeric WHERE vehicle_id = %s AND name = 'speed'",
                  (vehicle,)) == 42.0

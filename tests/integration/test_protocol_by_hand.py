"""Follow docs/protocol.md's shell recipe literally: openssl + mosquitto_pub, no Motus code."""

import base64
import os
import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from ingest.registry import enroll_vehicle
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
    with psycopg.connect(database_url) as conn:
        vehicle = enroll_vehicle(conn, email="maker@test.example", device_id="handmade-001",
                                 public_key=public_key)
    sh(recipe("publish"), DEVICE_ID="handmade-001", MQTT_HOST=local_stack.mqtt_host,
       MQTT_PORT=str(local_stack.mqtt_port))
    wait_until(lambda: scalar(database_url, "SELECT count(*) FROM telemetry_events") == 1,
               what="the hand-made event to be stored")
    assert scalar(database_url, "SELECT count(*) FROM quarantine") == 0
    assert scalar(database_url,
                  "SELECT value FROM signals_numeric WHERE vehicle_id = %s AND name = 'speed'",
                  (vehicle,)) == 42.0

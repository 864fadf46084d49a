"""The money side's commands, as an operator, a driver and a developer type them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from motus.cli import app
from registry.store import add_driver, add_vehicle
from rewards.weeks import Week
from tests.fixtures.screen import assert_readable

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
VINS = {"ana": "WVWZZZ1JZXW000001", "ben": "WVWZZZ1JZXW000002"}


@pytest.fixture
def cli(database_url, tmp_path):
    env = {"MOTUS_DATABASE_URL": database_url, "MOTUS_NETWORK_KEY_FILE": str(tmp_path / "network.key"),
           "COLUMNS": "80"}
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    with psycopg.connect(database_url, autocommit=True) as conn:
        for name, vin in VINS.items():
            add_vehicle(conn, add_driver(conn, f"{name}@example.com"), vin=vin)
    return run


def test_a_union_licenses_its_members_data_and_pays_them(cli, database_url, tmp_path):
    created = cli("union", "create", "lakeside", "--operator", "op@lakeside.example",
                  "--bylaws", str(ROOT / "docs/examples/bylaws.toml"))
    assert "union lakeside created" in created
    assert "asked to join" in cli("union", "join", "lakeside", "--vin", VINS["ana"])  # by approval
    cli("union", "approve", "lakeside", "--vin", VINS["ana"])
    cli("union", "join", "lakeside", "--vin", VINS["ben"])
    cli("union", "approve", "lakeside", "--vin", VINS["ben"])
    shown = json.loads(cli("union", "show", "lakeside", "--json"))
    assert shown["members"] == 2 and shown["bylaws_in_force"]["member_share_bps"] == 8000
    assert_readable(cli("union", "show", "lakeside"), ["lakeside", "at least 80%", "research"])

    knob = cli("driver", "knob", "ben@example.com", "private")
    assert_readable(knob, ["private", "location"])
    cli("developer", "add", "Road Research Ltd", "--contact", "data@road.example")
    refused = cli("licence", "grant", "--union", "lakeside", "--developer", "Road Research Ltd",
                  "--purpose", "research", "--scope", "speed,non-location", "--price", "300", code=1)
    assert "top up first" in refused
    assert "balance 5,000.00 EUR" in cli("developer", "topup", "Road Research Ltd", "500000",
                                         "--reference", "inv-1")
    assert "already recorded" in cli("developer", "topup", "Road Research Ltd", "500000",
                                     "--reference", "inv-1")
    marketing = cli("licence", "grant", "--union", "lakeside", "--developer", "Road Research Ltd",
                    "--purpose", "marketing", "--scope", "speed", "--price", "300", code=1)
    assert "marketing" in marketing
    receipt = json.loads(cli("licence", "grant", "--union", "lakeside", "--developer", "Road Research Ltd",
                             "--purpose", "research", "--scope", "speed", "--price", "300", "--json"))
    assert receipt["covered"]["vehicles"] == 1  # ben's knob says private
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    assert "valid" in cli("licence", "receipt", "--verify", str(path))
    receipt["licence"]["price_minor_per_vehicle_30_days"] = 1
    path.write_text(json.dumps(receipt))
    assert "invalid" in cli("licence", "receipt", "--verify", str(path), code=1)
    licence_id = receipt["licence"]["id"]
    assert json.loads(cli("licence", "show", licence_id, "--json"))["covered_now"]
    strike = cli("union", "strike", "lakeside", "--reason", "price", "--votes", "0", code=1)
    assert "1 of 2 member vehicles must vote" in strike
    cli("union", "strike", "lakeside", "--reason", "price", "--votes", "1")
    assert json.loads(cli("licence", "show", licence_id, "--json"))["covered_now"] == []


def test_an_epoch_closed_from_the_cli_gives_each_driver_a_proof_they_can_check(cli, database_url, tmp_path):
    week = Week.of((datetime.now(UTC) - timedelta(days=14)).date())
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO movement_proofs (vehicle_id, day, verdict, fixes_used, fixes_dropped, checks,"
            " reasons) SELECT id, %s, 'moved', 10, 0, '{}', '{}' FROM vehicles", (week.first_day,))
    not_over = cli("epoch", "close", "--week", str(Week.of(datetime.now(UTC).date())), code=1)
    assert "is not over" in not_over
    table = cli("epoch", "close", "--week", str(week))
    assert_readable(table, ["1,105,000.000000 MOTUS", "ledger rows written"])
    again = json.loads(cli("epoch", "close", "--week", str(week), "--json"))
    assert again["written"] == 0 and again["proven_vehicles"] == 2
    proof_path = tmp_path / "proof.json"
    cli("rewards", "proof", "--driver", "ana@example.com", "--epoch", str(week), "--out", str(proof_path))
    key = cli("rewards", "key").strip()
    checked = subprocess.run([sys.executable, "-m", "rewards.verifier", str(proof_path), "--key", key],
                             capture_output=True, text=True, cwd=ROOT)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    statement = json.loads(cli("ledger", "statement", "--driver", "ana@example.com", "--json"))
    assert statement["balances"] == {"MOTUS": 1_105_000 * 10**6 // 2}
    assert_readable(cli("ledger", "statement", "--driver", "ana@example.com"), ["552,500.000000 MOTUS"])
    assert "ledger verified" in cli("ledger", "verify")
    assert json.loads(cli("epoch", "show", "--week", str(week), "--json"))["drivers_paid"] == 2


def test_commands_that_change_something_answer_in_json_too(cli, tmp_path):
    bylaws = (ROOT / "docs/examples/bylaws.toml").read_text().replace('admission = "approval"',
                                                                        'admission = "open"')
    (tmp_path / "open.toml").write_text(bylaws)
    cli("union", "create", "open-union", "--operator", "op@open.example",
        "--bylaws", str(tmp_path / "open.toml"))
    joined = json.loads(cli("union", "join", "open-union", "--vin", VINS["ana"], "--json"))
    assert joined == {"union": "open-union", "vin": VINS["ana"], "admitted": True}
    assert json.loads(cli("union", "pause", "--vin", VINS["ana"], "--json"))["paused"] is True
    assert json.loads(cli("union", "pause", "--vin", VINS["ana"], "--resume", "--json"))["paused"] is False
    assert "not a member of any union" in cli("union", "pause", "--vin", VINS["ben"], code=1)
    cli("developer", "add", "Fleet Co", "--contact", "ops@fleet.example")
    paid = json.loads(cli("developer", "topup", "Fleet Co", "10000", "--reference", "p-1", "--json"))
    assert paid["balance_minor"] == 10_000 and paid["recorded"] is True
    receipt = json.loads(cli("licence", "grant", "--union", "open-union", "--developer", "Fleet Co",
                             "--purpose", "maintenance", "--scope", "speed", "--price", "300", "--json"))
    revoked = json.loads(cli("licence", "revoke", receipt["licence"]["id"], "--json"))
    assert revoked["licence"] == receipt["licence"]["id"]
    assert json.loads(cli("licence", "show", revoked["licence"], "--json"))["covered_now"] == []
    assert json.loads(cli("union", "leave", "--vin", VINS["ana"], "--json"))["left"] is True


def test_mistakes_get_an_error_line_not_a_traceback(cli, tmp_path):
    bylaws = str(ROOT / "docs/examples/bylaws.toml")
    bad_slug = cli("union", "create", "Lake Side", "--operator", "op@x.example", "--bylaws", bylaws, code=1)
    assert bad_slug.startswith("error: ") and "cannot name a union" in bad_slug
    assert "9999-W01" in cli("epoch", "close", "--week", "9999-W01", code=2)
    cli("rewards", "key")
    missing = cli("licence", "receipt", "--verify", str(tmp_path / "nope.json"), code=1)
    assert missing.startswith("error: cannot read a receipt")
    (tmp_path / "list.json").write_text("[1, 2]")
    assert "holds no receipt" in cli("licence", "receipt", "--verify", str(tmp_path / "list.json"), code=1)
    assert "Traceback" not in bad_slug + missing

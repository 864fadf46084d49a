import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from motus.cli import app
from tests.fixtures.screen import assert_readable

runner = CliRunner()


def motus(*args, env=None):
    return subprocess.run([sys.executable, "-m", "motus", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_help_lists_only_the_commands_that_exist():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    commands = set(re.findall(r"│ (\w+)\s{2,}", result.output))
    assert commands == {"signals", "stack", "db", "broker", "device", "agent", "ingest", "api", "sim",
                        "bench", "demo", "movement", "developer", "union", "driver", "licence", "epoch",
                        "ledger", "rewards", "account"}


def test_signals_json_has_the_catalog():
    result = runner.invoke(app, ["signals", "--json"])
    assert result.exit_code == 0
    entries = json.loads(result.output)
    assert len(entries) >= 116
    assert all({"name", "unit", "type", "privilege"} <= set(e) for e in entries)
    speed = next(e for e in entries if e["name"] == "speed")
    assert (speed["unit"], speed["type"], speed["obd"]["pid"]) == ("km/h", "float", "0D")


def test_signals_table_filters():
    result = runner.invoke(app, ["signals", "--location"], env={"COLUMNS": "200"})
    assert "currentLocationCoordinates" in result.output
    assert "speed " not in result.output


@pytest.mark.integration
def test_stack_lifecycle_through_the_cli(stack_dir, stack_path_args, timescaledb):
    directory = str(stack_dir)
    up = motus("stack", "up", "--dir", directory, *stack_path_args)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "migrations applied" in up.stdout
    assert ("TimescaleDB hypertables" if timescaledb else "plain PostgreSQL partitions") in up.stdout
    try:
        assert motus("stack", "status", "--dir", directory).returncode == 0
        assert json.loads(motus("stack", "status", "--dir", directory, "--json").stdout) == {
            "postgres": True, "mosquitto": True}
        exports = motus("stack", "env", "--dir", directory).stdout
        env = dict(re.findall(r"export (MOTUS_\w+)=(\S+)", exports))
        assert set(env) == {
            "MOTUS_DATABASE_URL", "MOTUS_MQTT_HOST", "MOTUS_MQTT_PORT", "MOTUS_MQTT_USERNAME",
            "MOTUS_MQTT_PASSWORD", "MOTUS_BROKER_ADMIN_USERNAME", "MOTUS_BROKER_ADMIN_PASSWORD",
            "MOTUS_DEVICE_MQTT_HOST", "MOTUS_DEVICE_MQTT_PORT", "MOTUS_DEVICE_MQTT_TLS",
            "MOTUS_DEVICE_MQTT_CA_FILE", "MOTUS_NETWORK_KEY_FILE"}
        assert oct((stack_dir / "stack.json").stat().st_mode & 0o777) == "0o600"
        again = motus("db", "upgrade", env=env)
        assert again.returncode == 0 and "up to date" in again.stdout
        assert "applied" in motus("db", "status", env=env).stdout
        assert motus("stack", "up", "--dir", directory).returncode == 0  # idempotent
    finally:
        assert motus("stack", "down", "--dir", directory).returncode == 0
    stopped = motus("stack", "status", "--dir", directory)
    assert stopped.returncode == 1 and "stopped" in stopped.stdout


def without_motus_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MOTUS_")}


@pytest.mark.integration
def test_db_upgrade_without_a_server_fails_clearly():
    result = motus("db", "upgrade", env={"MOTUS_DATABASE_URL": "postgresql://x:secret@127.0.0.1:1/x"})
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot connect to the database at postgresql://x@127.0.0.1:1/x:")
    assert "secret" not in result.stderr  # a password never reaches the terminal
    assert "MOTUS_DATABASE_URL is not set" not in result.stderr  # it was set


@pytest.mark.parametrize("command", [["device", "list"], ["db", "status"], ["movement", "prove", "--day",
                                                                          "2026-11-20"],
                                     ["ingest", "rollup"], ["ingest", "run"]])
def test_unset_settings_say_what_to_run(command):
    result = subprocess.run([sys.executable, "-m", "motus", *command], capture_output=True, text=True,
                            timeout=60, env={**without_motus_settings(), "PGCONNECT_TIMEOUT": "3"})
    assert result.returncode == 1
    assert "MOTUS_DATABASE_URL is not set" in result.stderr
    assert 'motus stack up`, then `eval "$(motus stack env)"`' in result.stderr
    assert "Traceback" not in result.stderr


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert re.fullmatch(r"motus \d+\.\d+\.\d+\n", result.output)


def test_signals_table_reads_at_80_columns():
    result = runner.invoke(app, ["signals"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    catalog = json.loads(runner.invoke(app, ["signals", "--json"]).output)
    assert_readable(result.output, [e["name"] for e in catalog])
    line = result.output.splitlines()[result.output.splitlines().index(
        next(x for x in result.output.splitlines() if x.strip() == "speed")) + 1]
    assert "km/h" in line and "0 .. " in line and "01 0D: A" in line  # speed's unit, range and PID


def test_broker_init_writes_identities_once_and_config_uses_the_given_ports(tmp_path):
    path = tmp_path / "dynamic-security.json"
    first = runner.invoke(app, ["broker", "init", str(path)])
    assert first.exit_code == 0, first.output
    exports = dict(re.findall(r"export (MOTUS_\w+)=(\S+)", first.output))
    assert exports["MOTUS_MQTT_USERNAME"] == "motus-ingest"
    identities = json.loads(path.read_text())
    assert [c["username"] for c in identities["clients"]] == ["motus-admin", "motus-ingest"]
    assert exports["MOTUS_MQTT_PASSWORD"] not in path.read_text()  # only its hash is stored
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = runner.invoke(app, ["broker", "init", str(path)])
    assert again.exit_code == 1 and json.loads(path.read_text()) == identities
    conf = runner.invoke(app, ["broker", "config", "--tls-port", "9883", "--ws-port", "9884",
                               "--dynsec-file", str(path)])
    assert conf.exit_code == 0
    assert "listener 9883 0.0.0.0" in conf.output and "listener 9884 0.0.0.0" in conf.output
    assert f"plugin_opt_config_file {path}" in conf.output


def test_motus_agent_loads_only_the_agent():
    """On the car's small board `motus agent` must not pull in the server side."""
    probe = ("import sys; sys.argv = ['motus', 'agent', '--help']\n"
             "from motus.entry import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "heavy = ('fastapi', 'psycopg', 'uvicorn', 'api', 'ingest', 'registry', 'movement',"
             " 'migrations', 'broker_config', 'stack', 'connections.database')\n"
             "print(sorted(m for m in heavy if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "run" in result.stdout and "status" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_agent_config_errors_are_named(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('[device]\nid = "mdevice1"\nprivate_key_file = "k"\n[broker]\nhost = "h"\nport = 1\n'
                      '[sources.elm327]\nport = "/dev/null"\nsignals = { warpFactor = 5 }\n')
    result = subprocess.run([sys.executable, "-m", "motus", "agent", "run", "--config", str(config)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "warpFactor" in result.stderr and "catalog" in result.stderr

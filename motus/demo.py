"""`motus demo`: the whole first path on real servers, and a report of what happened.

Local stack -> migrations -> simulated cars provisioned (registry row and broker identity, as
`motus device register` does) -> `motus ingest run` and `motus api serve` as separate
processes -> the broker shown refusing intruders -> cars publish signed events over MQTT/TLS
(plus a replay, a corpus of hostile messages and cars that spoof their movement) -> wait until
all are committed or quarantined -> the day's proof of movement -> read the latest values back
through the HTTP API -> one device revoked and shown cut off.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from broker_config.admin import BrokerAdmin
from migrations.runner import MigrationError, upgrade
from motus.binaries import StackError
from motus.demo_agent import AgentCarOutcome, run_agent_car, stored_readings
from motus.demo_movement import SPOOF_TRIP_S, labels_for, spoofing_cars, vehicle_of
from motus.demo_movement import prove as prove_movement
from motus.demo_movement import report as report_movement
from motus.provisioning import provision_fleet, revoke
from motus.stack import LocalStack, StackInfo, free_port
from protocol.endpoint import MqttEndpoint
from simulators.fleet import BrokerRefused, Publisher, SimCar, connect_device, drive_events, make_fleet
from simulators.hostile import hostile_messages

console = Console()
WAIT_TIMEOUT_S = 120.0
AGENT_CAR_SECONDS = 8.0


def _register(info: StackInfo, cars: list[SimCar], tag: str) -> list[UUID]:
    with psycopg.connect(info.database_url) as conn, BrokerAdmin(info.admin_endpoint) as admin:
        return provision_fleet(conn, admin, cars, lambda i: f"driver{i}.{tag}@demo.motus.example")


def _refused(attempt: Callable[[], object]) -> str:
    """'' if the broker allowed ``attempt``, else what it said."""
    try:
        attempt()
    except BrokerRefused as exc:
        return exc.reason
    return ""


def _intruders(info: StackInfo, car: SimCar, other: SimCar) -> list[tuple[str, str]]:
    """What the broker says to those who must not get in or must not write somewhere."""
    def connect(endpoint: MqttEndpoint, client_id: str) -> Callable[[], object]:
        return lambda: connect_device(endpoint, client_id).disconnect()

    def publish_on_others_topic() -> None:
        sneaky = Publisher(lambda c: info.device_endpoint(c.device_id, c.mqtt_password))
        sneaky.publish(car, other.topic, b"{}")
        sneaky.close()

    anonymous = MqttEndpoint(host=info.mqtt_host, port=info.mqtt_tls_port, tls=True,
                             ca_file=info.ca_file)
    wrong = info.device_endpoint(car.device_id, "not-the-password")
    return [
        ("anonymous client", _refused(connect(anonymous, "anonymous-demo"))),
        ("wrong password", _refused(connect(wrong, car.device_id))),
        ("device using another's client id",
         _refused(connect(info.device_endpoint(car.device_id, car.mqtt_password, tls=False),
                          other.device_id))),
        ("publish on another device's topic", _refused(publish_on_others_topic)),
    ]



def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "motus", *args], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _wait_for(what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes],
              log: Path) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{what} did not start:\n{tail}")
        time.sleep(0.1)


def _http_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _api_up(base: str) -> bool:
    try:
        return _http_json(f"{base}/healthz") == {"status": "ok"}
    except OSError:
        return False


def _outcome(conninfo: str, device_ids: list[str], since: datetime) -> tuple[int, Counter[str]]:
    with psycopg.connect(conninfo) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM telemetry_events WHERE device_id = ANY(%s)", (device_ids,)
        ).fetchone()
        reasons = conn.execute(
            "SELECT reason, count(*) FROM quarantine WHERE received_at >= %s GROUP BY reason",
            (since,),
        ).fetchall()
    return int(stored[0] if stored else 0), Counter({str(r): int(n) for r, n in reasons})


def demo(
    cars: int = typer.Option(5, min=2, max=500, help="Simulated cars."),
    seconds: int = typer.Option(300, min=10, max=86400, help="Seconds of driving per car."),
    directory: Path = typer.Option(Path(".motus"), "--dir", help="Where the local stack lives."),
    keep_running: bool = typer.Option(False, help="Leave the stack running afterwards."),
) -> None:
    """Run the whole first path (car -> MQTT -> ingest -> PostgreSQL -> API) and report it."""
    stack = LocalStack(directory)
    try:
        with console.status("starting PostgreSQL and Mosquitto"):
            info = stack.up()
            upgrade(info.database_url)
    except (StackError, MigrationError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"stack: PostgreSQL :{info.pg_port}, Mosquitto :{info.mqtt_port} "
                  f"(TimescaleDB {'on' if info.timescaledb else 'off: plain partitions'})")
    try:
        _run(info, Path(info.dir), cars, seconds)
    finally:
        if not keep_running:
            stack.down()
            console.print(f"stack stopped (data kept in {directory}; `motus stack up` restarts it)")


def _run(info: StackInfo, workdir: Path, car_count: int, seconds: int) -> None:
    tag = secrets.token_hex(4)
    fleet = make_fleet(car_count, seed=int(tag, 16), drive_seconds=seconds)
    vehicles = _register(info, fleet, tag)
    console.print(f"provisioned {car_count} devices (registry, vehicles and broker identities; "
                  f"run {tag})")

    api_port, metrics_port = free_port(), free_port()
    env = {**os.environ, **info.env(), "MOTUS_INGEST_CLIENT_ID": "motus-demo-ingest",
           "MOTUS_INGEST_METRICS_PORT": str(metrics_port), "MOTUS_API_PORT": str(api_port)}
    base = f"http://127.0.0.1:{api_port}"
    with ExitStack() as cleanup:
        ingest_log, api_log = workdir / "ingest.log", workdir / "api.log"
        log_start = ingest_log.stat().st_size if ingest_log.exists() else 0
        ingest = _spawn(["ingest", "run"], env, ingest_log)
        cleanup.callback(_stop, ingest)
        api = _spawn(["api", "serve"], env, api_log)
        cleanup.callback(_stop, api)
        _wait_for("ingest", lambda: "ingesting from" in
                  ingest_log.read_text(errors="replace")[log_start:], ingest, ingest_log)
        _wait_for("API", lambda: _api_up(base), api, api_log)
        console.print(f"ingest running; API on {base} (OpenAPI at {base}/docs)")
        intruders = _intruders(info, fleet[0], fleet[1])

        started = datetime.now(UTC)
        publisher = Publisher(lambda car: info.device_endpoint(car.device_id, car.mqtt_password))
        published = 0
        drive_start = started - timedelta(seconds=seconds + 5)
        replay: tuple[str, bytes] | None = None
        for car in fleet:
            for topic, payload in drive_events(car, drive_start, seconds):
                publisher.publish(car, topic, payload)
                published += 1
                replay = replay or (topic, payload)
        readings = published * len(fleet[0].vehicle.readings(started))
        assert replay is not None
        publisher.flush()
        publisher.publish(fleet[0], *replay)  # the same event again, after it was stored
        hostile = hostile_messages(fleet[0], fleet[1], started)
        for message in hostile:
            publisher.publish(message.sender, message.topic, message.payload)
        spoofs = spoofing_cars(started, seed=int(tag, 16) % 1_000_000)
        spoof_cars = [scenario.cars[0] for scenario in spoofs]
        spoof_vehicles = _register(info, spoof_cars, f"{tag}s")
        spoof_events = 0
        for scenario in spoofs:
            for car, topic, payload in scenario.events:
                publisher.publish(car, topic, payload)
                spoof_events += 1
        publisher.close()
        console.print(f"published over MQTT/TLS {published} signed events ({readings} readings) "
                      f"from {car_count} cars, 1 replayed event and {len(hostile)} hostile messages")
        console.print(f"published {spoof_events} signed events from {len(spoofs)} spoofing cars "
                      f"({', '.join(s.name for s in spoofs)})")
        with console.status(f"the agent car: `motus agent run` reading an ELM327 and a GPS for "
                            f"{AGENT_CAR_SECONDS:g} s"):
            agent_car = run_agent_car(info, workdir, AGENT_CAR_SECONDS, tag)

        device_ids = [car.device_id for car in fleet + spoof_cars]
        published += spoof_events
        expected_rejects = Counter(m.reason for m in hostile) + Counter({"replayed": 1})
        deadline = time.monotonic() + WAIT_TIMEOUT_S
        with console.status("waiting for ingest to commit everything"):
            while True:
                stored, rejected = _outcome(info.database_url, device_ids, started)
                done = stored >= published and rejected.total() >= expected_rejects.total()
                if done or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        latency = (datetime.now(UTC) - started).total_seconds()
        agent_deadline = time.monotonic() + WAIT_TIMEOUT_S
        while True:
            agent_car.readings_by_name = stored_readings(info.database_url, agent_car.device_id)
            if agent_car.ok or time.monotonic() > agent_deadline:
                break
            time.sleep(0.2)
        duplicates = ingest_metric(metrics_port, "motus_ingest_duplicate_events_total")
        labels = labels_for(vehicles, spoofs, spoof_vehicles)
        agent_vehicle = vehicle_of(info.database_url, agent_car.device_id)
        if agent_vehicle is not None:
            labels[agent_vehicle] = "the agent car"
        earliest = min(drive_start, started - timedelta(seconds=SPOOF_TRIP_S + 60))
        movement = prove_movement(info.database_url, earliest, datetime.now(UTC), labels,
                                  honest=set(vehicles) | ({agent_vehicle} if agent_vehicle else set()),
                                  spoofed=set(spoof_vehicles))
        latest = _http_json(f"{base}/v1/vehicles/{vehicles[0]}/signals/latest")
        revocation = _revoke_live(info, fleet[-1])
    _report(published, stored, duplicates, rejected, expected_rejects, latency, latest, fleet[0])
    _report_agent_car(agent_car)
    report_movement(console, movement)
    _report_access(intruders, revocation)
    refused_all = all(said for _, said in [*intruders, *revocation])
    if (stored != published or rejected != expected_rejects or duplicates != 0 or not refused_all
            or not agent_car.ok or not movement.ok):
        raise typer.Exit(1)


def _report_agent_car(outcome: AgentCarOutcome) -> None:
    table = Table(title=f"the agent car (device {outcome.device_id}): {outcome.adapter_line}")
    table.add_column("signal stored", no_wrap=True)
    table.add_column("readings", justify="right")
    for name, count in sorted(outcome.readings_by_name.items()):
        table.add_row(name, str(count))
    table.add_row("[dim]left in the agent's spool[/dim]", str(outcome.left_in_spool))
    console.print(table)


def _revoke_live(info: StackInfo, car: SimCar) -> list[tuple[str, str]]:
    """Revoke a connected device the way `motus device revoke` does; report what it saw."""
    client = connect_device(info.device_endpoint(car.device_id, car.mqtt_password), car.device_id)
    cut_off = threading.Event()
    reasons: list[str] = []

    def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        reasons.append(str(reason))
        cut_off.set()

    client.on_disconnect = on_disconnect
    with psycopg.connect(info.database_url) as conn, BrokerAdmin(info.admin_endpoint) as admin:
        revoke(conn, admin, car.device_id)
    cut_off.wait(10)
    client.loop_stop()
    again = _refused(lambda: connect_device(
        info.device_endpoint(car.device_id, car.mqtt_password), car.device_id).disconnect())
    return [("revoked while connected: cut off", reasons[0] if reasons else ""),
            ("revoked: connects again", again)]


def _report_access(intruders: list[tuple[str, str]], revocation: list[tuple[str, str]]) -> None:
    table = Table(title="the broker's answer to who must not get in")
    table.add_column("attempt")
    table.add_column("broker said")
    for attempt, said in [*intruders, *revocation]:
        table.add_row(attempt, said or "[red]ALLOWED[/red]")
    console.print(table)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def ingest_metric(port: int, name: str) -> float:
    """One counter from the ingest's Prometheus endpoint (text exposition format)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def _report(published: int, stored: int, duplicates: float, rejected: Counter[str],
            expected: Counter[str],
            latency_s: float, latest: object, car: SimCar) -> None:
    table = Table(title="what happened")
    table.add_column("")
    table.add_column("events", justify="right")
    table.add_row("published by the cars", str(published))
    table.add_row("ingested (stored once)", str(stored))
    table.add_row("redelivered by the broker, dropped", f"{duplicates:g}")
    table.add_row("rejected into quarantine", str(sum(rejected.values())))
    for reason, count in sorted(rejected.items()):
        mark = "" if expected.get(reason) == count else f" (expected {expected.get(reason, 0)})"
        table.add_row(f"  {reason}", f"{count}{mark}")
    console.print(table)
    console.print(f"everything committed within {latency_s:.1f}s of the first publish")
    body = latest if isinstance(latest, dict) else {}
    signals = Table(title=f"GET /v1/vehicles/{body.get('vehicle_id')}/signals/latest "
                          f"(device {car.device_id})")
    signals.add_column("name", no_wrap=True)
    signals.add_column("value")
    signals.add_column("unit")
    signals.add_column("timestamp", no_wrap=True)
    for entry in body.get("signals", []):
        signals.add_row(entry["name"], json.dumps(entry["value"]), entry["unit"],
                        entry["timestamp"])
    console.print(signals)

"""`motus demo`: the whole first path on real servers, and a report of what happened.

Local stack -> migrations -> simulated cars registered -> `motus ingest run` and
`motus api serve` as separate processes -> cars publish signed events over MQTT (plus a replay
and a corpus of hostile messages) -> wait until all are committed or quarantined -> read the
latest values back through the HTTP API.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from ingest.registry import enroll_vehicle
from migrations.runner import MigrationError, upgrade
from motus.binaries import StackError
from motus.stack import LocalStack, StackInfo, free_port
from simulators.fleet import Publisher, SimCar, drive_events, make_fleet
from simulators.hostile import hostile_messages

console = Console()
WAIT_TIMEOUT_S = 120.0


def _register(conninfo: str, cars: list[SimCar], tag: str) -> list[UUID]:
    vehicles = []
    with psycopg.connect(conninfo) as conn:
        for i, car in enumerate(cars):
            vehicles.append(enroll_vehicle(
                conn, email=f"driver{i}.{tag}@demo.motus.example", device_id=car.device_id,
                public_key=car.public_key, vin=car.vin, make="Simulated", model="Sedan",
                year=2020,
            ))
    return vehicles


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
    cars: int = typer.Option(5, min=1, max=500, help="Simulated cars."),
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
    vehicles = _register(info.database_url, fleet, tag)
    console.print(f"registered {car_count} drivers, vehicles and devices (run {tag})")

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

        started = datetime.now(UTC)
        publisher = Publisher(info.mqtt_host, info.mqtt_port)
        published = 0
        drive_start = started - timedelta(seconds=seconds + 5)
        replay: tuple[str, bytes] | None = None
        for car in fleet:
            for topic, payload in drive_events(car, drive_start, seconds):
                publisher.publish(car.device_id, topic, payload)
                published += 1
                replay = replay or (topic, payload)
        readings = published * len(fleet[0].vehicle.readings(started))
        assert replay is not None
        publisher.publish(fleet[0].device_id, *replay)  # the same event again: a duplicate
        hostile = hostile_messages(fleet[0], fleet[-1] if car_count > 1 else fleet[0], started)
        for message in hostile:
            publisher.publish(fleet[0].device_id, message.topic, message.payload)
        publisher.close()
        console.print(f"published {published} signed events ({readings} readings) from "
                      f"{car_count} cars, 1 replayed event and {len(hostile)} hostile messages")

        device_ids = [car.device_id for car in fleet]
        expected_rejects = Counter(m.reason for m in hostile)
        deadline = time.monotonic() + WAIT_TIMEOUT_S
        with console.status("waiting for ingest to commit everything"):
            while True:
                stored, rejected = _outcome(info.database_url, device_ids, started)
                duplicates = _ingest_counter(metrics_port, "motus_ingest_duplicate_events_total")
                done = (stored >= published and sum(rejected.values()) >= len(hostile)
                        and duplicates >= 1)
                if done or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        latency = (datetime.now(UTC) - started).total_seconds()
        latest = _http_json(f"{base}/v1/vehicles/{vehicles[0]}/signals/latest")
    _report(published, stored, duplicates, rejected, expected_rejects, latency, latest, fleet[0])
    if stored != published or rejected != expected_rejects or duplicates != 1:
        raise typer.Exit(1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _ingest_counter(port: int, name: str) -> float:
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
    table.add_row("replayed, dropped as duplicate", f"{duplicates:g}")
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

"""`motus demo`: the whole first path on real servers, and a report of what happened.

Local stack -> migrations -> simulated cars provisioned (registry row and broker identity, as
`motus device register` does) -> `motus ingest run` and `motus api serve` as separate
processes -> the broker shown refusing intruders -> cars publish signed events over MQTT/TLS
(plus an event sent twice, a corpus of hostile messages and cars that spoof their movement) -> wait until
all are committed or quarantined -> the day's proof of movement -> read the latest values back
through the HTTP API -> one device revoked and shown cut off.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from broker_config.admin import BrokerAdmin
from connections.database import connect
from connections.errors import BrokerRefused
from connections.settings import DatabaseSettings
from migrations.runner import MigrationError, upgrade
from motus.demo_agent import AgentCarOutcome, agent_car_span_s, run_agent_car
from motus.demo_movement import (
    SPOOF_TRIP_S,
    MovementOutcome,
    labels_for,
    report_table,
    scene_end,
    spoofing_cars,
    wait_for_one_day,
)
from motus.demo_movement import prove as prove_movement
from protocol.endpoint import MqttEndpoint
from registry.keys import create_personal_token
from registry.provisioning import revoke
from registry.store import vehicle_of_device
from simulators.fleet import SimCar, drive_events, make_fleet
from simulators.hostile import hostile_messages
from simulators.publisher import Publisher, connect_device
from stack.cli import PathOption
from stack.devices import register_cars_on
from stack.errors import StackError
from stack.local import LocalStack, StackInfo
from stack.probes import count, poll_until, readings_by_name
from stack.services import scrape, start_api, start_ingest

WAIT_TIMEOUT_S = 120.0
AGENT_CAR_SECONDS = 15.0  # at real time: the 0.5 km a proof of movement needs take 12.4 s at 145 km/h


def _refused(attempt: Callable[[], object]) -> str:
    """'' if the broker allowed ``attempt``, else what it said."""
    try:
        attempt()
    except BrokerRefused as exc:
        return exc.reason
    return ""


def _intruders(info: StackInfo, car: SimCar, other: SimCar) -> list[tuple[str, str]]:
    """What the broker says to those who must not get in or must not write somewhere."""
    def connect_as(endpoint: MqttEndpoint, client_id: str) -> Callable[[], object]:
        return lambda: connect_device(endpoint, client_id).disconnect()

    def publish_on_others_topic() -> None:
        sneaky = Publisher(lambda c: info.device_endpoint(c.device_id, c.mqtt_password))
        sneaky.publish(car, other.topic, b"{}")
        sneaky.close()

    anonymous = MqttEndpoint(host=info.mqtt_host, port=info.mqtt_tls_port, tls=True,
                             ca_file=info.ca_file)
    wrong = info.device_endpoint(car.device_id, "not-the-password")
    return [
        ("anonymous client", _refused(connect_as(anonymous, "anonymous-demo"))),
        ("wrong password", _refused(connect_as(wrong, car.device_id))),
        ("device using another's client id",
         _refused(connect_as(info.device_endpoint(car.device_id, car.mqtt_password, tls=False),
                             other.device_id))),
        ("publish on another device's topic", _refused(publish_on_others_topic)),
    ]


def _http_json(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
        return json.loads(response.read())


@dataclass
class DemoReport:
    published: int
    stored: int
    #: Copies of stored events: redelivered by the broker, or sent again by a car (``resent``).
    duplicates: int
    resent: int
    quarantined: Counter[str]
    expected_quarantine: Counter[str]
    latency_s: float
    latest: dict[str, Any]
    latest_device: str
    agent_car: AgentCarOutcome
    movement: MovementOutcome
    access: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return (self.stored == self.published and self.quarantined == self.expected_quarantine
                and self.resent >= 1 and all(said for _, said in self.access)
                and self.agent_car.ok and self.movement.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "published": self.published, "stored": self.stored,
            "duplicates": self.duplicates, "resent": self.resent, "quarantined": dict(self.quarantined),
            "expected_quarantine": dict(self.expected_quarantine),
            "latency_s": round(self.latency_s, 2), "latest": self.latest,
            "agent_car": {"device_id": self.agent_car.device_id, "adapter": self.agent_car.adapter_line,
                          "readings": self.agent_car.readings_by_name,
                          "left_in_spool": self.agent_car.left_in_spool, "ok": self.agent_car.ok},
            "movement": [{"vehicle_id": str(vehicle), "car": label,
                          "verdict": str(proof.verdict) if proof else None,
                          "distance_km": proof.distance_km if proof else None,
                          "reasons": [str(r) for r in proof.reasons] if proof else []}
                         for vehicle, label in self.movement.labels.items()
                         for proof in [self.movement.proofs.get(vehicle)]],
            "broker_refusals": [{"attempt": a, "broker_said": said} for a, said in self.access],
        }


def demo(
    cars: int = typer.Option(5, min=2, max=500, help="Simulated cars."),
    seconds: int = typer.Option(300, min=10, max=86400, help="Seconds of driving per car."),
    directory: Path = typer.Option(Path(".motus"), "--dir", help="Where the local stack lives."),
    keep_running: bool = typer.Option(False, help="Leave the stack running afterwards."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object "
                                 "(progress goes to stderr)."),
    timescaledb: bool | None = PathOption,
) -> None:
    """Run the whole first path (car -> MQTT -> ingest -> PostgreSQL -> API) and report it."""
    console = Console(stderr=as_json)
    stack = LocalStack(directory, timescaledb=timescaledb)
    try:
        with console.status("starting PostgreSQL and Mosquitto"):
            info = stack.up()
            upgrade(info.database_url)
    except (StackError, MigrationError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"stack: PostgreSQL :{info.pg_port} "
                  f"({'TimescaleDB hypertables' if info.timescaledb else 'plain PostgreSQL partitions'}), "
                  f"Mosquitto :{info.mqtt_port}")
    try:
        report = _run(console, info, Path(info.dir), cars, seconds)
    finally:
        if not keep_running:
            stack.down()
            console.print(f"stack stopped (data kept in {directory}; `motus stack up` restarts it)")
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        _print_report(console, report)
    if not report.ok:
        raise typer.Exit(1)


def _run(console: Console, info: StackInfo, workdir: Path, car_count: int, seconds: int) -> DemoReport:
    tag = secrets.token_hex(4)
    fleet = make_fleet(car_count, seed=int(tag, 16), drive_seconds=seconds)
    vehicles = register_cars_on(info, fleet, lambda i: f"driver{i}.{tag}@demo.motus.example")
    console.print(f"provisioned {car_count} devices (registry, vehicles and broker identities; "
                  f"run {tag})")
    with console.status("starting `motus ingest run` and `motus api serve`"), \
            start_ingest(info, workdir / "ingest.log",
                         settings={"ingest_client_id": "motus-demo-ingest"}) as ingest, \
            start_api(info, workdir / "api.log") as api:
        base = f"http://127.0.0.1:{api.ports['http']}"
        console.print(f"ingest running; API on {base} (OpenAPI at {base}/docs)")
        intruders = _intruders(info, fleet[0], fleet[1])

        started = datetime.now(UTC)
        publisher = Publisher(lambda car: info.device_endpoint(car.device_id, car.mqtt_password))
        published = 0
        span = timedelta(seconds=max(seconds + 5, SPOOF_TRIP_S + 60))
        scene = scene_end(started, span)  # every simulated drive inside one UTC day
        drive_start = scene - timedelta(seconds=seconds + 5)
        again: tuple[str, bytes] | None = None
        for car in fleet:
            for topic, payload in drive_events(car, drive_start, seconds):
                publisher.publish(car, topic, payload)
                published += 1
                again = again or (topic, payload)
        readings = published * len(fleet[0].vehicle.readings(started))
        assert again is not None
        publisher.flush()
        publisher.publish(fleet[0], *again)  # the same event again: stored once, counted
        hostile = hostile_messages(fleet[0], fleet[1], started)
        for message in hostile:
            publisher.publish(message.sender, message.topic, message.payload)
        spoofs = spoofing_cars(scene, seed=int(tag, 16) % 1_000_000)
        spoof_cars = [scenario.cars[0] for scenario in spoofs]
        spoof_vehicles = register_cars_on(info, spoof_cars, lambda i: f"driver{i}.{tag}s@demo.motus.example")
        spoof_events = 0
        for scenario in spoofs:
            for car, topic, payload in scenario.events:
                publisher.publish(car, topic, payload)
                spoof_events += 1
        publisher.close()
        console.print(f"published over MQTT/TLS {published} signed events ({readings} readings) "
                      f"from {car_count} cars, 1 event sent twice and {len(hostile)} hostile messages")
        console.print(f"published {spoof_events} signed events from {len(spoofs)} spoofing cars "
                      f"({', '.join(s.name for s in spoofs)})")
        wait = wait_for_one_day(datetime.now(UTC), agent_car_span_s(AGENT_CAR_SECONDS))
        if wait:
            with console.status(f"waiting {wait:.0f} s for midnight UTC: the agent car's drive is "
                                "proved on one day"):
                time.sleep(wait)
        with console.status(f"the agent car: `motus agent run` reading an ELM327 and a GPS for "
                            f"{AGENT_CAR_SECONDS:g} s"):
            agent_car = run_agent_car(info, workdir, AGENT_CAR_SECONDS, tag)

        device_ids = [car.device_id for car in fleet + spoof_cars]
        # A hostile message whose envelope and signature are good but whose reading is bad: its
        # event is stored (without the reading, quarantined on its own).
        published += spoof_events + sum(1 for m in hostile if m.event_stored)
        expected = Counter(m.reason for m in hostile)
        url = info.database_url

        def quarantined() -> Counter[str]:
            with connect(DatabaseSettings(database_url=url)) as conn:
                rows = conn.execute("SELECT reason, count(*) FROM quarantine WHERE received_at >= %s"
                                    " GROUP BY reason", (started,)).fetchall()
            return Counter({str(r): int(str(n)) for r, n in rows})

        def stored() -> int:
            return count(url, "SELECT count(*) FROM telemetry_events WHERE device_id = ANY(%s)",
                         (device_ids,))

        with console.status("waiting for ingest to commit everything"):
            poll_until(lambda: stored() >= published and quarantined().total() >= expected.total(),
                       WAIT_TIMEOUT_S, interval_s=0.2)
        latency = (datetime.now(UTC) - started).total_seconds()

        def agent_car_delivered() -> bool:
            agent_car.readings_by_name = readings_by_name(url, agent_car.device_id)
            return agent_car.ok

        poll_until(agent_car_delivered, WAIT_TIMEOUT_S, interval_s=0.2)
        poll_until(lambda: scrape(ingest.ports["metrics"]).value("motus_ingest_resent_events_total") >= 1,
                   WAIT_TIMEOUT_S, interval_s=0.2)
        ingest_metrics = scrape(ingest.ports["metrics"])
        duplicates = ingest_metrics.value("motus_ingest_duplicate_events_total")
        resent = ingest_metrics.value("motus_ingest_resent_events_total")
        labels = labels_for(vehicles, spoofs, spoof_vehicles)
        with connect(DatabaseSettings(database_url=url)) as conn:
            agent_vehicle = vehicle_of_device(conn, agent_car.device_id)
        if agent_vehicle is not None:
            labels[agent_vehicle] = "the agent car"
        earliest = scene - span
        agent_vehicles = {agent_vehicle} if agent_vehicle else set()
        movement = prove_movement(url, earliest, datetime.now(UTC), labels,
                                  honest=set(vehicles) | agent_vehicles, spoofed=set(spoof_vehicles),
                                  driven=agent_vehicles)
        with connect(DatabaseSettings(database_url=url)) as conn:  # the first driver reads their car
            token = create_personal_token(conn, f"driver0.{tag}@demo.motus.example", "demo",
                                          datetime.now(UTC))[1]
        latest = _http_json(f"{base}/v1/vehicles/{vehicles[0]}/signals/latest", token)
        revocation = _revoke_live(info, fleet[-1])
        return DemoReport(published, stored(), int(duplicates), int(resent), quarantined(), expected,
                          latency, latest,
                          fleet[0].device_id, agent_car, movement, [*intruders, *revocation])


def _revoke_live(info: StackInfo, car: SimCar) -> list[tuple[str, str]]:
    """Revoke a connected device the way `motus device revoke` does; report what it saw."""
    client = connect_device(info.device_endpoint(car.device_id, car.mqtt_password), car.device_id)
    cut_off = threading.Event()
    reasons: list[str] = []

    def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        reasons.append(str(reason))
        cut_off.set()

    client.on_disconnect = on_disconnect
    with connect(DatabaseSettings(database_url=info.database_url)) as conn, \
            BrokerAdmin(info.admin_endpoint) as admin:
        revoke(conn, admin, car.device_id)
    cut_off.wait(10)
    client.loop_stop()
    again = _refused(lambda: connect_device(
        info.device_endpoint(car.device_id, car.mqtt_password), car.device_id).disconnect())
    return [("revoked while connected: cut off", reasons[0] if reasons else ""),
            ("revoked: connects again", again)]


def _table(title: str) -> Table:
    return Table(title=title, box=box.SIMPLE_HEAD)


def _value_text(value: Any) -> str:
    """A reading as a person reads it: numbers as printed, a place as 'latitude, longitude'."""
    if isinstance(value, dict) and "latitude" in value:
        return f"{value['latitude']:.5f}, {value['longitude']:.5f}"
    return str(value)  # a float as Python prints it: the shortest text that reads back exactly


def _print_report(console: Console, report: DemoReport) -> None:
    table = _table("what happened")
    table.add_column("", overflow="fold")
    table.add_column("events", justify="right", no_wrap=True)
    table.add_row("published by the cars", str(report.published))
    table.add_row("ingested (stored once)", str(report.stored))
    table.add_row("sent again by a car, stored once", str(report.resent))
    table.add_row("redelivered by the broker, stored once", str(report.duplicates - report.resent))
    table.add_row("rejected into quarantine", str(report.quarantined.total()))
    for reason, n in sorted(report.quarantined.items()):
        wanted = report.expected_quarantine.get(reason, 0)
        table.add_row(f"  {reason}", f"{n}" + ("" if wanted == n else f" (expected {wanted})"))
    console.print(table)
    console.print(f"everything committed within {report.latency_s:.1f}s of the first publish")

    # Values and units are what the reader came for: names and values never cut, times short.
    vehicle = report.latest.get("vehicle_id")
    signals = _table(f"GET /v1/vehicles/{vehicle}/signals/latest (device {report.latest_device})")
    signals.add_column("signal", no_wrap=True)
    signals.add_column("value and unit", overflow="fold")
    signals.add_column("at (UTC)", no_wrap=True)
    for entry in report.latest.get("signals", []):
        at = datetime.fromisoformat(entry["timestamp"])
        value = f"{_value_text(entry['value'])} {entry['unit']}".strip()
        signals.add_row(entry["name"], value, f"{at:%H:%M:%S}")
    console.print(signals)

    agent = report.agent_car
    agent_table = _table(f"the agent car (device {agent.device_id})")
    agent_table.add_column("signal stored", no_wrap=True)
    agent_table.add_column("readings", justify="right")
    for name, n in sorted(agent.readings_by_name.items()):
        agent_table.add_row(name, str(n))
    agent_table.add_row("[dim]left in the agent's spool[/dim]", str(agent.left_in_spool))
    console.print(agent_table)
    console.print(f"its adapter: {agent.adapter_line}")

    console.print(report_table(report.movement))

    access = _table("the broker's answer to who must not get in")
    access.add_column("attempt", overflow="fold")
    access.add_column("broker said", overflow="fold")
    for attempt, said in report.access:
        access.add_row(attempt, said or "[red]ALLOWED[/red]")
    console.print(access)


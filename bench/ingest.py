"""`motus bench ingest`: the ingest against the goals of its issue, beside its references, in one run.

On a throwaway local stack (real Mosquitto and PostgreSQL):

- ours: fleet processes publish signed events of 20 readings (19 OBD-II values and a GPS fix)
  as fast as they can over MQTT; `motus ingest run --workers N` consumes them. Signals per
  second = readings committed / (last commit - first publish). Enough events are prepared for
  ``seconds`` at the goal rate; the events are signed, and encoded as MQTT PUBLISH packets,
  before the clock starts (bench/replay.py: the cars cost this machine next to nothing, as a
  real fleet would).
- p99: the fleet publishes at half the rate reached, each event stamped with its scheduled
  publish time; the workers' commit-lag histogram (commit time - event time) gives the p99.
- the ceiling: one Python process binary-COPYing the same rows into the same tables.
- the naive consumer: a paho callback that verifies each event as ours does, then INSERTs it
  reading by reading and commits per message.
- lost and duplicated: events and readings expected against those stored.
- the mean batch over the flood (events per transaction: the latest-values upsert and the commit
  are paid per batch).
- where the time went, over the flood: CPU microseconds per event of the ingest's processes
  (``worker_cpu_us_per_event``), of PostgreSQL's (``db_cpu_us_per_event``), of the broker and of
  the publishers (publishing only, signing before it not counted), from /proc and the publishers'
  own process time; and each one's share of the machine's cores, so the ratio to the ceiling can
  be read against what the ingest actually had.

Publishers, broker, database and ingest share this machine's cores, which is the main limit.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from bench.agent import BENCH_SIGNALS, bench_stack
from bench.replay import ReplayFleet, car_sockets, packet_id
from connections.mqtt_bulk import qos1_publish_packet
from migrations.runner import upgrade
from protocol.endpoint import MqttEndpoint
from protocol.topics import ALL_TELEMETRY
from stack.devices import register_cars_on
from stack.local import StackInfo
from stack.probes import count, poll_until
from stack.services import scrape, start_ingest

GOALS = {"signals_per_s": 150_000.0, "ratio_to_ceiling": 0.5, "speedup_vs_naive": 20.0, "p99_ms": 1000.0,
         "worker_cpu_us_per_event": 150.0}
#: Goals that are ceilings (the others are floors).
AT_MOST = {"p99_ms", "worker_cpu_us_per_event"}
READINGS_PER_EVENT = 20
CARS = 40
FLEET_SEED = 4242
PROCESSES = 2
console = Console(stderr=True)


@dataclass(frozen=True, slots=True)
class FleetJob:
    """What one fleet process signs and then publishes: events of ``cars`` (indices into the
    seeded fleet), event n of the whole fleet going to car n % fleet size."""

    endpoint: MqttEndpoint
    passwords: dict[int, str]
    total: int
    boot: str
    #: Event n is stamped start + n / rate (and with pace, published then too).
    start: datetime
    rate: float
    pace: bool


def _signed_payloads(job: FleetJob, mine: set[int]) -> list[tuple[int, str, bytes]]:
    from protocol.envelope import Location, SignalReading, build_event
    from protocol.signing import sign_event, wire_bytes
    from simulators.fleet import make_fleet

    fleet = make_fleet(CARS, seed=FLEET_SEED, drive_seconds=job.total // CARS + 2)
    names = BENCH_SIGNALS[: READINGS_PER_EVENT - 1]
    out = []
    for n in range(job.total):
        index = n % CARS
        if index not in mine:
            continue
        car = fleet[index]
        car.vehicle.step(1.0)
        values = car.vehicle.obd_values()
        state = car.vehicle.state
        at = job.start + timedelta(seconds=n / job.rate)
        readings = [SignalReading(name=name, timestamp=at, value=values[name]) for name in names]
        readings.append(SignalReading(name="currentLocationCoordinates", timestamp=at, value=Location(
            latitude=round(state.latitude, 7), longitude=round(state.longitude, 7), hdop=0.9)))
        event = build_event(device_id=car.device_id, boot_id=job.boot, seq=n // CARS, time=at,
                            signals=readings)
        out.append((n, car.topic, wire_bytes(sign_event(event, car.topic, car.key))))
    return out


def _fleet_process(job: FleetJob, mine: list[int], ready: Any, go: MpEvent, results: Any) -> None:
    from simulators.fleet import make_fleet
    from simulators.publisher import connect_device

    payloads = _signed_payloads(job, set(mine))
    fleet = make_fleet(CARS, seed=FLEET_SEED, drive_seconds=1)
    clients = {}
    for index in mine:
        endpoint = job.endpoint.model_copy(update={"username": fleet[index].device_id,
                                                   "password": job.passwords[index]})
        clients[index] = connect_device(endpoint, fleet[index].device_id)
    cars = ReplayFleet(car_sockets(clients))
    packets = []  # (n, car, PUBLISH packet), encoded before the clock starts
    made: dict[int, int] = {}
    for n, topic, payload in payloads:
        car = n % CARS
        made[car] = made.get(car, 0) + 1
        packets.append((n, car, qos1_publish_packet(topic.encode(), payload, packet_id(made[car]))))
    ready.put(len(packets))
    go.wait()
    began = time.time()
    cpu_began = time.process_time()
    max_lag = 0.0
    for sent, (n, car, packet) in enumerate(packets):
        if job.pace:
            due = job.start.timestamp() + n / job.rate
            while (ahead := due - time.time()) > 0:
                cars.poll(ahead)
            max_lag = max(max_lag, -ahead)
        elif sent % 100 == 0:
            cars.poll(0)
        cars.send(car, packet)
    deadline = time.time() + 120
    while cars.unacknowledged and time.time() < deadline:
        cars.poll(0.05)
    if cars.unacknowledged:
        raise RuntimeError(f"{cars.unacknowledged} PUBLISHes not acknowledged by the broker in 120 s")
    results.put((cars.acknowledged, time.time() - began, max_lag, time.process_time() - cpu_began))
    for client in clients.values():
        client.disconnect()


def run_fleet(job: FleetJob) -> tuple[float, float, float]:
    """Sign in PROCESSES processes, then publish from all at once; (start time, max lag s,
    CPU seconds the publishing took in all of them, signing not counted)."""
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    shares = [[i for i in range(CARS) if i % PROCESSES == p] for p in range(PROCESSES)]
    processes = [context.Process(target=_fleet_process, args=(job, share, ready, go, results))
                 for share in shares]
    for process in processes:
        process.start()
    _gather(ready, processes, 600)
    started = time.time()
    go.set()
    done = _gather(results, processes, 900)
    for process in processes:
        process.join(timeout=60)
    return started, max(lag for _, _, lag, _ in done), sum(cpu for _, _, _, cpu in done)


def _gather(channel: Any, processes: list[Any], timeout_s: float) -> list[Any]:
    """One message from each process; fail at once if one of them dies instead."""
    deadline = time.time() + timeout_s
    got: list[Any] = []
    while len(got) < len(processes):
        try:
            got.append(channel.get(timeout=0.5))
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in processes) or time.time() > deadline:
                for p in processes:
                    p.kill()
                raise RuntimeError("a fleet process failed (see above)") from None
    return got


def process_tree(pid: int) -> set[int]:
    """``pid`` and its descendants, from /proc (Linux)."""
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def cpu_seconds(pids: set[int]) -> dict[int, float]:
    """User + system CPU seconds of each process still alive (``/proc/PID/stat`` fields 14, 15)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return out


@dataclass
class CpuMeter:
    """CPU seconds spent by process trees between ``start`` and ``stop``; a process born in
    between counts whole, one that ended in between is lost (the services here live on)."""

    roots: dict[str, int]
    _before: dict[str, dict[int, float]] = field(default_factory=dict)

    def start(self) -> None:
        self._before = {name: cpu_seconds(process_tree(pid)) for name, pid in self.roots.items()}

    def stop(self) -> dict[str, float]:
        spent = {}
        for name, pid in self.roots.items():
            now = cpu_seconds(process_tree(pid))
            spent[name] = sum(now.values()) - sum(v for p, v in self._before[name].items() if p in now)
        return spent


def postmaster_pid(info: StackInfo) -> int:
    return int((Path(info.dir) / "postgres" / "data" / "postmaster.pid").read_text().split()[0])


def wait_for_events(url: str, boot: str, expected: int, timeout_s: float = 900) -> float:
    """Poll until ``expected`` events of ``boot`` are stored; return the time it happened."""
    if not poll_until(lambda: count(url, "SELECT count(*) FROM telemetry_events WHERE boot_id = %s",
                                    (boot,)) >= expected, timeout_s):
        raise TimeoutError(f"only {count(url, 'SELECT count(*) FROM telemetry_events')} events stored")
    return time.time()


def quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float:
    """The q-quantile of what a histogram observed between two scrapes (linear within a
    bucket, as Prometheus' histogram_quantile)."""
    old = dict(before)
    counts = [(bound, count - old.get(bound, 0.0)) for bound, count in after]
    total = counts[-1][1]
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in counts:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(cumulative - below, 1e-9)
        lower, below = bound, cumulative
    return lower


def copy_ceiling(url: str, rows_wanted: int) -> float:
    """Rows per second of one process binary-COPYing stored readings back into the same tables
    (rows exactly as ingest writes them), in one transaction."""
    with psycopg.connect(url) as conn:
        numeric = conn.execute(
            "SELECT ts, vehicle_id, device_id, name, value FROM signals_numeric LIMIT %s",
            (rows_wanted * 19 // 20,)).fetchall()
        location = conn.execute(
            "SELECT ts, vehicle_id, device_id, name, latitude, longitude, hdop FROM signals_location"
            " LIMIT %s", (rows_wanted // 20,)).fetchall()
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY signals_numeric (ts, vehicle_id, device_id, name, value)"
                          " FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["timestamptz", "uuid", "text", "text", "float8"])
                for row in numeric:
                    copy.write_row(row)
            with cur.copy("COPY signals_location (ts, vehicle_id, device_id, name, latitude, longitude, hdop)"
                          " FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["timestamptz", "uuid", "text", "text", "float8", "float8", "float4"])
                for row in location:
                    copy.write_row(row)
        return (len(numeric) + len(location)) / (time.perf_counter() - started)


class NaiveConsumer:
    """What most people write first: a paho callback, one INSERT per reading, commit per message."""

    def __init__(self, info: StackInfo, url: str) -> None:
        from connections.mqtt import connect, make_client
        from protocol.catalog import load_catalog
        from registry.directory import DeviceDirectory

        self.conn = psycopg.connect(url)
        self.directory = DeviceDirectory(psycopg.connect(url))
        self.catalog = load_catalog()
        self.errors = 0
        self.client = make_client(info.ingest_endpoint, "naive-bench")
        self.client.on_message = self._on_message
        connect(self.client, info.ingest_endpoint, subscriptions=[(f"$share/naive/{ALL_TELEMETRY}", 1)],
                timeout_s=30)

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        from ingest.pipeline import Accepted, process_message
        from protocol.envelope import Place

        outcome = process_message(message.topic, bytes(message.payload), self.directory.lookup,
                                  self.catalog, datetime.now(UTC))
        if not isinstance(outcome, Accepted):
            self.errors += 1
            return
        event = outcome
        with self.conn.transaction():
            self.conn.execute("INSERT INTO telemetry_events (device_id, boot_id, seq, event_time,"
                              " signal_count) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                              (event.source, event.boot_id, event.seq, event.time, len(event.readings)))
            for name, ts, value in event.readings:
                if isinstance(value, Place):
                    self.conn.execute(
                        "INSERT INTO signals_location (ts, vehicle_id, device_id, name, latitude, longitude,"
                        " hdop) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        (ts, event.vehicle_id, event.source, name, value.latitude, value.longitude,
                         value.hdop))
                else:
                    self.conn.execute(
                        "INSERT INTO signals_numeric (ts, vehicle_id, device_id, name, value)"
                        " VALUES (%s, %s, %s, %s, %s)", (ts, event.vehicle_id, event.source, name, value))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.conn.close()
        self.directory.conn.close()


def measure(seconds: float, workers: int, naive_events: int, *, timescaledb: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="motus-bench-ingest-") as tmp:
        root = Path(tmp)
        stack, info = bench_stack(root, timescaledb=timescaledb)
        try:
            return _run(info, root, seconds, workers, naive_events)
        finally:
            stack.down()


def main(seconds: float, workers: int, naive_events: int, timescaledb: bool = False) -> None:
    """The plain path; with ``timescaledb``, the TimescaleDB path measured beside it in the same
    run (the last line then holds both and their ratios)."""
    plain = measure(seconds, workers, naive_events, timescaledb=False)
    _report("motus bench ingest: plain PostgreSQL partitions", plain)
    if not timescaledb:
        print(json.dumps(plain))
        return
    hyper = measure(seconds, workers, naive_events, timescaledb=True)
    _report("motus bench ingest: TimescaleDB hypertables", hyper)
    ratios = {f"timescaledb_to_plain_{key}": round(hyper[key] / plain[key], 3)
              for key in ("signals_per_s", "copy_ceiling_rows_per_s", "p99_ms") if plain[key]}
    console.print(", ".join(f"{k}: {v}" for k, v in ratios.items()))
    print(json.dumps({"plain": plain, "timescaledb": hyper, **ratios}))


def _run(info: StackInfo, root: Path, seconds: float, workers: int, naive_events: int) -> dict[str, Any]:
    from simulators.fleet import make_fleet

    url = info.database_url
    upgrade(url)
    fleet = make_fleet(CARS, seed=FLEET_SEED, drive_seconds=1)
    register_cars_on(info, fleet, lambda i: f"bench{i}@motus.example")
    passwords = {i: car.mqtt_password for i, car in enumerate(fleet) if car.mqtt_password}
    endpoint = info.device_endpoint(fleet[0].device_id, passwords[0], tls=False)
    goal_events = int(seconds * GOALS["signals_per_s"] / READINGS_PER_EVENT)
    ingest = start_ingest(info, root / "ingest.log", workers=workers,
                          settings={"ingest_client_id": "bench-ingest",
                                    "ingest_housekeeping_seconds": "3600"})
    metrics_port = ingest.ports["metrics"]
    try:
        # (a) ours, as fast as the fleet can publish
        console.print(f"signing {goal_events} events of {READINGS_PER_EVENT} readings ...")
        flood_start = datetime.now(UTC) - timedelta(seconds=goal_events / CARS + 60)
        flood = FleetJob(endpoint, passwords, goal_events, "flood", flood_start, rate=float(CARS), pace=False)
        meter = CpuMeter({"ingest": ingest.pid, "postgres": postmaster_pid(info),
                          "broker": info.mosquitto_pid})
        meter.start()
        began, _, publishers_cpu = run_fleet(flood)
        done = wait_for_events(url, "flood", goal_events)
        spent = {**meter.stop(), "publishers": publishers_cpu}
        events_per_s = goal_events / (done - began)
        console.print(f"ours: {events_per_s:,.0f} events/s")
        # Where the time went: CPU per event of each part, and its share of the machine's cores
        # over the flood (signing before it is not counted).
        capacity = (done - began) * (os.cpu_count() or 1)
        per_event = {f"{name}_cpu_us_per_event": round(cpu / goal_events * 1e6)
                     for name, cpu in spent.items()}
        shares = {f"{name}_share_of_machine": round(cpu / capacity, 3) for name, cpu in spent.items()}
        # p99 at half that rate, events stamped with their publish time
        half = events_per_s / 2
        paced_events = int(half * min(seconds, 10))
        # The flood's last commits reach the histogram after the rows are visible: wait for
        # them, or their long lags would count as the paced events'.
        poll_until(lambda: scrape(metrics_port).value("motus_ingest_stored_events_total") >= goal_events, 60)
        flood_metrics = scrape(metrics_port)
        batches = flood_metrics.value("motus_ingest_batch_events_count")
        mean_batch = flood_metrics.value("motus_ingest_batch_events_sum") / batches if batches else 0.0
        before = flood_metrics.buckets("motus_ingest_commit_lag_seconds")
        lead = paced_events / 2500 + 10  # signing time, with margin, before the schedule begins
        paced = FleetJob(endpoint, passwords, paced_events, "paced",
                         datetime.now(UTC) + timedelta(seconds=lead), rate=half, pace=True)
        console.print(f"publishing {paced_events} events at {half:,.0f}/s for the latency ...")
        _, max_lag, _ = run_fleet(paced)
        wait_for_events(url, "paced", paced_events)
        time.sleep(1.0)  # the commit of the last batch reaches the metrics
        after = scrape(metrics_port).buckets("motus_ingest_commit_lag_seconds")
        p99_ms = quantile(before, after, 0.99) * 1000
        expected_events = goal_events + paced_events
        stored_events = count(url, "SELECT count(*) FROM telemetry_events")
        stored_readings = (count(url, "SELECT count(*) FROM signals_numeric")
                           + count(url, "SELECT count(*) FROM signals_location"))
    finally:
        ingest.stop(timeout_s=120)
    # (c) the naive consumer, alone
    naive = NaiveConsumer(info, url)
    try:
        naive_start = datetime.now(UTC) - timedelta(seconds=naive_events / CARS + 60)
        naive_job = FleetJob(endpoint, passwords, naive_events, "naive", naive_start, float(CARS), False)
        began, _, _ = run_fleet(naive_job)
        done = wait_for_events(url, "naive", naive_events)
    finally:
        naive.close()
    naive_per_s = naive_events * READINGS_PER_EVENT / (done - began)
    # (b) the ceiling
    ceiling = copy_ceiling(url, min(goal_events * READINGS_PER_EVENT, 400_000))
    signals_per_s = events_per_s * READINGS_PER_EVENT
    return {
        "signals_per_s": round(signals_per_s),
        "copy_ceiling_rows_per_s": round(ceiling),
        "ratio_to_ceiling": round(signals_per_s / ceiling, 3),
        "naive_signals_per_s": round(naive_per_s),
        "speedup_vs_naive": round(signals_per_s / naive_per_s, 1),
        "lost": expected_events - stored_events,
        "duplicated": stored_readings - expected_events * READINGS_PER_EVENT,
        "p99_ms": round(p99_ms, 1),
        "worker_cpu_us_per_event": per_event["ingest_cpu_us_per_event"],
        "db_cpu_us_per_event": per_event["postgres_cpu_us_per_event"],
        "broker_cpu_us_per_event": per_event["broker_cpu_us_per_event"],
        "publisher_cpu_us_per_event": per_event["publishers_cpu_us_per_event"],
        **shares,
        "p99_rate_events_per_s": round(half),
        "publisher_max_lag_ms": round(max_lag * 1000, 1),
        "events": expected_events,
        "readings_per_event": READINGS_PER_EVENT,
        "workers": workers,
        "mean_batch_events": round(mean_batch),
        "naive_quarantined": naive.errors,
    }


def _report(title: str, figures: dict[str, Any]) -> None:
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    for key, value in figures.items():
        goal = GOALS.get(key)
        table.add_row(key, f"{value:,}" if isinstance(value, int | float) else str(value),
                      "" if goal is None else (f"<= {goal:,.0f}" if key in AT_MOST else f">= {goal:,}"))
    table.add_row("lost, duplicated", "", "0, 0")
    console.print(table)

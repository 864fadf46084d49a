"""`motus bench faults`: every reading the cars measured arrives once, whatever fails between.

On a throwaway local stack (real Mosquitto, PostgreSQL and `motus ingest run`), cars publish
readings through the real agent code (spool, receipts, re-sends) while one fault is applied at
a time:

- ``broker_kill``: the broker SIGKILLed and restarted five times under load;
- ``broker_term``: the broker stopped (SIGTERM, it saves its sessions) and restarted;
- ``ingest_down``: the ingest stopped for minutes under load, then started again;
- ``before_ingest``: cars publish before any ingest ever subscribed (a new group), then it starts;
- ``persistence_lost``: the broker's persistence file deleted between stop and start (its
  sessions, the ingest's queue among them, are gone).

Each reading carries a marker (its value), so the database tells exactly which readings
arrived and how often. A case starts on a broker without sessions and a new ingest group.
Recovery: from the fault's end until every reading measured before it is stored.

The reference, in the same run: the same cases with the agent forgetting an event at the
broker's PUBACK (``[publish] receipts = false``, the agent before receipts): what it loses is what
receipts save.

The cases are shared with the e2e fault suite (tests/e2e/test_faults.py), which drives real
agent processes; this bench drives many agents in one process (``InProcessFleet``): the same
Spool, EventBuilder, BrokerLink and Pump as `motus agent run`, without a process per car.
"""

from __future__ import annotations

import json
import logging
import secrets
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from device_agent.agent import DurableSink, Pump, ReadingQueue, ReceiptWait
from device_agent.backoff import Backoff
from device_agent.events import EventBuilder
from device_agent.link import BrokerLink
from device_agent.spool import Spool
from migrations.runner import upgrade
from protocol.envelope import SignalReading
from stack.devices import AgentDevice, provision_agent
from stack.local import LocalStack, StackInfo
from stack.probes import poll_until
from stack.services import Service, start_ingest

console = Console(stderr=True)
#: The marked reading: its value is the marker (the catalog allows 0 .. 2,000,000 km).
MARKER_SIGNAL = "powertrainTransmissionTravelledDistance"


class Fleet(Protocol):
    """Cars under test: what they measured (markers a car's agent has durably taken), per device."""

    device_ids: list[str]

    def measured(self) -> dict[str, list[int]]: ...
    def stop_measuring(self) -> None: ...
    def spooled_events(self) -> int: ...
    def close(self) -> None: ...


@dataclass
class FaultStage:
    """A private stack whose broker and ingest the cases may break."""

    stack: LocalStack
    info: StackInfo
    root: Path
    ingest: Service | None = None
    group: str = "faults"
    batch_seconds: float = 0.2

    @classmethod
    def create(cls, root: Path, *, timescaledb: bool = False) -> FaultStage:
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o711)  # the servers' service account must reach its files
        stack = LocalStack(root / "stack", timescaledb=timescaledb)
        info = stack.up()
        upgrade(info.database_url)
        return cls(stack, info, root)

    @property
    def database_url(self) -> str:
        return self.info.database_url

    def new_group(self) -> None:
        """Later ingests join a group no ingest has subscribed with yet."""
        self.group = f"faults{secrets.token_hex(3)}"

    def start_ingest(self) -> None:
        self.ingest = start_ingest(self.info, self.root / "ingest.log", settings={
            "ingest_group": self.group, "ingest_client_id": f"{self.group}-ingest",
            "ingest_batch_seconds": str(self.batch_seconds)})

    def stop_ingest(self) -> None:
        if self.ingest is not None:
            self.ingest.stop()
            self.ingest = None

    def restart_broker(self, how: signal.Signals, *, pause_s: float = 0.5,
                       forget_persistence: bool = False) -> None:
        self.info = self.stack.restart_mosquitto(how, pause_s=pause_s, forget_persistence=forget_persistence)

    def close(self) -> None:
        self.stop_ingest()
        self.stack.destroy()


@dataclass(frozen=True)
class FaultCase:
    name: str
    what: str
    #: Applies the fault to a stage whose cars are publishing; returns when the fault ended.
    act: Callable[[FaultStage, CaseTiming], None]
    ingest_first: bool = True


@dataclass(frozen=True)
class CaseTiming:
    """How long the load runs around each fault (the e2e suite and the bench choose)."""

    load_before_s: float = 4.0
    between_kills_s: float = 3.0
    ingest_down_s: float = 120.0
    before_ingest_s: float = 20.0


def _kill_five_times(stage: FaultStage, timing: CaseTiming) -> None:
    for _ in range(5):
        time.sleep(timing.between_kills_s)
        stage.restart_broker(signal.SIGKILL)


def _term(stage: FaultStage, timing: CaseTiming) -> None:
    time.sleep(timing.load_before_s)
    stage.restart_broker(signal.SIGTERM)


def _ingest_down(stage: FaultStage, timing: CaseTiming) -> None:
    time.sleep(timing.load_before_s)
    stage.stop_ingest()
    time.sleep(timing.ingest_down_s)
    stage.start_ingest()


def _before_ingest(stage: FaultStage, timing: CaseTiming) -> None:
    time.sleep(timing.before_ingest_s)
    stage.start_ingest()


def _persistence_lost(stage: FaultStage, timing: CaseTiming) -> None:
    time.sleep(timing.load_before_s)
    stage.restart_broker(signal.SIGTERM, forget_persistence=True)


CASES = {case.name: case for case in (
    FaultCase("broker_kill", "broker SIGKILL + restart, 5 times", _kill_five_times),
    FaultCase("broker_term", "broker SIGTERM + restart", _term),
    FaultCase("ingest_down", "ingest stopped, then started again", _ingest_down),
    FaultCase("before_ingest", "cars publish before any ingest subscribed", _before_ingest,
              ingest_first=False),
    FaultCase("persistence_lost", "broker persistence file deleted between restarts",
              _persistence_lost),
)}


@dataclass
class CaseResult:
    name: str
    cars: int
    measured: int
    stored: int
    lost: int
    duplicated: int
    #: None: what was measured before the fault's end never all arrived.
    recovery_s: float | None
    spooled_left: int

    @property
    def exact(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.measured == self.stored


def stored_markers(database_url: str, device_ids: Iterable[str]) -> dict[str, Counter[int]]:
    """Device -> marker -> how many times it is stored."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT device_id, value, count(*) FROM signals_numeric WHERE device_id = ANY(%s) "
            "AND name = %s GROUP BY device_id, value", (list(device_ids), MARKER_SIGNAL)).fetchall()
    out: dict[str, Counter[int]] = {}
    for device, value, n in rows:
        out.setdefault(str(device), Counter())[int(float(str(value)))] = int(str(n))
    return out


def _all_stored(database_url: str, wanted: dict[str, list[int]]) -> bool:
    stored = stored_markers(database_url, wanted)
    return all(set(markers) <= set(stored.get(device, ())) for device, markers in wanted.items())


def _stored_count(database_url: str, device_ids: Iterable[str]) -> int:
    return sum(sum(counts.values()) for counts in stored_markers(database_url, device_ids).values())


def _settle(stage: FaultStage, fleet: Fleet, wanted: dict[str, list[int]], timeout_s: float,
            quiet_s: float = 5.0) -> bool:
    """Wait until everything ``wanted`` is stored (True), or the cars hold nothing more to send
    and nothing new was stored for ``quiet_s`` (False: what is missing is lost), or the timeout."""
    url = stage.database_url
    last = (-1, time.monotonic())

    def done() -> bool:
        nonlocal last
        if _all_stored(url, wanted):
            return True
        count, now = _stored_count(url, wanted), time.monotonic()
        if count != last[0]:
            last = (count, now)
            return False
        return fleet.spooled_events() == 0 and now - last[1] >= quiet_s

    poll_until(done, timeout_s, interval_s=0.5)
    return _all_stored(url, wanted)


def run_case(stage: FaultStage, case: FaultCase, fleet_for: Callable[[FaultStage, str], Fleet],
             timing: CaseTiming, *, load_after_s: float = 3.0, timeout_s: float = 600.0,
             recovery: bool = True) -> CaseResult:
    """One case on ``stage``: a broker without sessions, a new ingest group, the cars publishing,
    the fault, then the accounting once everything measured is stored, or the cars have nothing
    left to send and nothing more arrives (what is missing then is lost), or ``timeout_s``.
    ``recovery``: also wait, under load, until what was measured before the fault's end is all
    stored (a side that loses readings never gets there: it waits ``timeout_s``)."""
    stage.stop_ingest()
    stage.restart_broker(signal.SIGTERM, pause_s=0.0, forget_persistence=True)
    stage.new_group()
    if case.ingest_first:
        stage.start_ingest()
    fleet = fleet_for(stage, case.name)
    try:
        case.act(stage, timing)
        fault_end = time.monotonic()
        before = fleet.measured()
        recovery_s = None
        if recovery and poll_until(lambda: _all_stored(stage.database_url, before), timeout_s,
                                   interval_s=0.2):
            recovery_s = time.monotonic() - fault_end
        time.sleep(load_after_s)
        fleet.stop_measuring()
        measured = fleet.measured()
        _settle(stage, fleet, measured, timeout_s)
        time.sleep(2 * stage.batch_seconds + 0.5)  # a late copy would be stored by now
        stored = stored_markers(stage.database_url, measured)
        left = fleet.spooled_events()
    finally:
        fleet.close()
    wanted = {(d, m) for d, markers in measured.items() for m in markers}
    got = Counter({(d, m): n for d, counts in stored.items() for m, n in counts.items()})
    return CaseResult(
        case.name, len(measured), len(wanted), sum(got.values()),
        lost=len(wanted - set(got)), duplicated=sum(n - 1 for n in got.values() if n > 1)
        + sum(n for key, n in got.items() if key not in wanted),
        recovery_s=recovery_s, spooled_left=left)


@dataclass
class _Car:
    device: AgentDevice
    spool: Spool
    sink: DurableSink
    pump: Pump
    measured: list[int] = field(default_factory=list)


class InProcessFleet:
    """``cars`` agents in this process: each a real spool, signer, broker link and pump (the
    agent's code), fed one marked reading every ``interval_s``."""

    def __init__(self, stage: FaultStage, tag: str, cars: int, *, interval_s: float = 0.5,
                 receipts: bool = True, receipt_wait: ReceiptWait = ReceiptWait()) -> None:
        self._stop = threading.Event()
        self._measuring = threading.Event()
        self._measuring.set()
        self._lock = threading.Lock()
        self._cars: list[_Car] = []
        for i in range(cars):
            directory = stage.root / tag / f"car{i}"
            vin = "".join(secrets.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(17))
            device = provision_agent(stage.info, directory, f"car{i}.{tag}@faults.motus.example", vin)
            spool = Spool(directory / "spool.sqlite", max_bytes=256 << 20, durable=False)
            builder = EventBuilder(device.device_id, device.key, f"{tag[:8]}{secrets.token_hex(4)}")
            link = BrokerLink(device.base.broker, device.device_id, backoff=Backoff(0.5, 5.0),
                              receipts=receipts)
            pump = Pump(spool=spool, link=link, builder=builder, readings=ReadingQueue(),
                        receipt_wait=receipt_wait)
            self._cars.append(_Car(device, spool, DurableSink(builder, spool), pump))
        self.device_ids = [car.device.device_id for car in self._cars]
        self._threads = [threading.Thread(target=car.pump.run, args=(self._stop,), daemon=True)
                         for car in self._cars]
        self._feeder = threading.Thread(target=self._feed, args=(interval_s,), daemon=True)
        self._threads.append(self._feeder)
        for thread in self._threads:
            thread.start()

    def _feed(self, interval_s: float) -> None:
        marker = 0
        while self._measuring.is_set() and not self._stop.is_set():
            now = datetime.now(UTC)
            for car in self._cars:
                car.sink.commit([SignalReading(name=MARKER_SIGNAL, timestamp=now, value=marker)])
                with self._lock:
                    car.measured.append(marker)  # durable in its spool: the car measured it
            marker += 1
            time.sleep(interval_s)

    def measured(self) -> dict[str, list[int]]:
        with self._lock:
            return {car.device.device_id: list(car.measured) for car in self._cars}

    def stop_measuring(self) -> None:
        """No reading after this returns: the feeder has finished its round."""
        self._measuring.clear()
        self._feeder.join(timeout=30)

    def spooled_events(self) -> int:
        return sum(car.spool.stats().events for car in self._cars)

    def close(self) -> None:
        self._measuring.clear()
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for car in self._cars:
            car.pump.finish(grace_s=0.0)
            car.spool.close()


def fleet_of(cars: int, receipts: bool) -> Callable[[FaultStage, str], Fleet]:
    def make(stage: FaultStage, tag: str) -> Fleet:
        return InProcessFleet(stage, f"{tag}-{'receipts' if receipts else 'puback'}", cars,
                              receipts=receipts)
    return make


def run(cars: int, case_names: list[str], timing: CaseTiming, *,
        reference: bool = True) -> tuple[list[CaseResult], list[CaseResult]]:
    """Ours (receipts) and, with ``reference``, the PUBACK-only agent, case by case."""
    logging.getLogger("device_agent").setLevel(logging.CRITICAL)
    ours: list[CaseResult] = []
    theirs: list[CaseResult] = []
    sides = [("receipts", True, ours)] + ([("PUBACK only", False, theirs)] if reference else [])
    with tempfile.TemporaryDirectory(prefix="motus-bench-faults-") as tmp:
        Path(tmp).chmod(0o711)
        stage = FaultStage.create(Path(tmp) / "faults")
        try:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("fault cases", total=len(case_names) * len(sides))
                for name in case_names:
                    case = CASES[name]
                    for side, receipts, into in sides:
                        progress.update(task, description=f"{name} ({side}): {case.what}")
                        into.append(run_case(stage, case, fleet_of(cars, receipts), timing,
                                             recovery=receipts))
                        progress.advance(task)
        finally:
            stage.close()
    return ours, theirs


def _max_recovery(results: list[CaseResult]) -> float | None:
    """The slowest recovery; None when a case never recovered."""
    times = [r.recovery_s for r in results]
    if any(t is None for t in times):
        return None
    return round(max((t for t in times if t is not None), default=0.0), 1)


def summary(results: list[CaseResult], reference: list[CaseResult]) -> dict[str, Any]:
    return {
        "cases": [r.name for r in results],
        "cars": max((r.cars for r in results), default=0),
        "readings_measured": sum(r.measured for r in results),
        "readings_stored": sum(r.stored for r in results),
        "lost": sum(r.lost for r in results),
        "duplicated": sum(r.duplicated for r in results),
        "max_recovery_s": _max_recovery(results),
        "recovery_s": {r.name: None if r.recovery_s is None else round(r.recovery_s, 1) for r in results},
        "reference_puback_only": {
            "readings_measured": sum(r.measured for r in reference),
            "lost": sum(r.lost for r in reference),
            "duplicated": sum(r.duplicated for r in reference),
            "lost_by_case": {r.name: r.lost for r in reference},
        },
    }


def report(results: list[CaseResult], reference: list[CaseResult]) -> None:
    table = Table(title="receipts: every reading once, whatever fails", title_justify="left")
    for column in ("case", "measured", "stored", "lost", "twice", "recovery s"):
        table.add_column(column, justify="left" if column == "case" else "right", no_wrap=True)
    for r in results:
        recovery = "never" if r.recovery_s is None else f"{r.recovery_s:.1f}"
        table.add_row(r.name, f"{r.measured:,}", f"{r.stored:,}", str(r.lost), str(r.duplicated), recovery)
    console.print(table)
    console.print("recovery: from the fault's end until every reading measured before it is stored")
    if not reference:
        return
    before = Table(title="PUBACK only (no receipts), same cases", title_justify="left")
    for column in ("case", "measured", "lost", "twice"):
        before.add_column(column, justify="left" if column == "case" else "right", no_wrap=True)
    for r in reference:
        before.add_row(r.name, f"{r.measured:,}", f"{r.lost:,}", str(r.duplicated))
    console.print(before)


def main(cars: int, case_names: list[str], ingest_down_s: float, reference: bool = True) -> None:
    ours, theirs = run(cars, case_names, CaseTiming(ingest_down_s=ingest_down_s), reference=reference)
    report(ours, theirs)
    print(json.dumps(summary(ours, theirs)))

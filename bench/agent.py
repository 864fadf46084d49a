"""`motus bench agent`: the in-car agent's footprint and drain speed, against the goals of the
agent issue and beside a reference in the same run.

- rss_mb, cpu_pct: `motus agent run` polling 20 signals at 5 Hz each from the ELM327 emulator
  on a pty (another process), publishing to the local broker; sampled from /proc.
- spool_mb_per_week: hours offline at 1 Hz x 20 signals written to a spool exactly as the
  agent writes it (signed, compressed), scaled to seven days.
- drain_readings_per_s: a filled spool drained by `motus agent run` to the local broker, beside
  the reference: one bare paho client publishing the same payloads at QoS 1 with no spool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from device_agent.config import Elm327Section, PhoneSection, PublishSection, SourcesSection, SpoolSection
from device_agent.events import EventBuilder
from device_agent.spool import Spool
from protocol.envelope import Location, SignalReading
from simulators.drive_cycles import drive_cycle
from simulators.publisher import connect_device
from simulators.vehicle import SimulatedVehicle
from stack.devices import AgentDevice, provision_agent
from stack.local import LocalStack, StackInfo, free_port
from stack.services import spawn

GOALS = {"rss_mb": 60.0, "cpu_pct": 10.0, "spool_mb_per_week": 300.0, "drain_readings_per_s": 5000.0}

#: 20 mode 01 signals, each on a PID of its own, all answered by the emulated engine ECU.
BENCH_SIGNALS = (
    "speed", "powertrainCombustionEngineSpeed", "powertrainCombustionEngineECT", "obdEngineLoad",
    "powertrainFuelSystemRelativeLevel", "powertrainTransmissionTravelledDistance", "exteriorAirTemperature",
    "lowVoltageBatteryCurrentVoltage", "obdIntakeTemp", "powertrainCombustionEngineTPS",
    "powertrainCombustionEngineMAF", "obdRunTime", "obdBarometricPressure", "obdMAP",
    "obdShortTermFuelTrim1", "obdLongTermFuelTrim1", "obdFuelPressure", "obdCommandedEGR",
    "obdCommandedEVAP", "obdWarmupsSinceDTCClear",
)
console = Console(stderr=True)


def bench_stack(root: Path, *, timescaledb: bool = False) -> tuple[LocalStack, StackInfo]:
    root.chmod(0o711)
    stack = LocalStack(root / f"stack-{'timescaledb' if timescaledb else 'plain'}", timescaledb=timescaledb)
    return stack, stack.up()


def provision(info: StackInfo, directory: Path) -> AgentDevice:
    from migrations.runner import upgrade

    upgrade(info.database_url)
    return provision_agent(info, directory, "bench@motus.example", "WMWZZZ3CZ8E123456")


def proc_sample(pid: int) -> tuple[float, float]:
    """(resident MiB, CPU seconds so far) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_kb / 1024, (int(fields[11]) + int(fields[12])) / ticks


def measure_footprint(device: AgentDevice, seconds: float) -> dict[str, float]:
    port_file = device.directory / "elm.port"
    emulator = spawn("ELM327 emulator", ["sim", "elm327", "--speedup", "1", "--port-file", str(port_file)],
                     os.environ, device.directory / "emulator.log")
    try:
        emulator.wait_ready(lambda: port_file.exists() and bool(port_file.read_text().strip()), 20)
        config = device.write(
            SourcesSection(elm327=Elm327Section(port=port_file.read_text().strip(), baudrate=38400,
                                                signals=dict.fromkeys(BENCH_SIGNALS, 5.0))),
            name="agent.bench.toml", log_level="WARNING", spool=SpoolSection(path=Path("bench-spool.sqlite")))
        agent = subprocess.Popen([sys.executable, "-m", "motus", "agent", "run", "--config", str(config)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(5)  # start, initialise the adapter, discover PIDs
        rss0, cpu0 = proc_sample(agent.pid)
        t0 = time.monotonic()
        peak = rss0
        while time.monotonic() - t0 < seconds:
            time.sleep(0.5)
            peak = max(peak, proc_sample(agent.pid)[0])
        _, cpu1 = proc_sample(agent.pid)
        elapsed = time.monotonic() - t0
        agent.terminate()
        out, err = agent.communicate(timeout=30)
    finally:
        emulator.stop(timeout_s=10)
    polled = int(out.split("polled ", 1)[1].split()[0]) if "polled " in out else 0
    if polled == 0:
        raise RuntimeError(f"the agent read nothing:\n{err[-2000:]}")
    return {"rss_mb": round(peak, 1), "cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 1),
            "polled_readings_per_s": round(polled / (elapsed + 5), 1)}


def car_readings(car: SimulatedVehicle, at: datetime) -> list[SignalReading]:
    values = car.obd_values()
    return [SignalReading(name=name, timestamp=at, value=values[name]) for name in BENCH_SIGNALS]


def fill_spool(path: Path, builder: EventBuilder, seconds: int, start: datetime) -> Spool:
    """``seconds`` of offline driving at 1 Hz x 20 signals, one event per second."""
    spool = Spool(path, max_bytes=1 << 40, durable=False)
    car = SimulatedVehicle(drive_cycle("WLTC") * 50, start=Location(latitude=48.1, longitude=11.5),
                           heading_deg=0, odometer_km=42_000)
    batch = []
    for second in range(seconds):
        car.step(1.0)
        at = start + timedelta(seconds=second)
        batch += builder.build(car_readings(car, at), at)
        if len(batch) >= 3600:
            spool.append(batch)
            batch = []
    spool.append(batch)
    return spool


def measure_spool_week(directory: Path, builder: EventBuilder, hours: float) -> dict[str, float]:
    """Spool file size after ``hours`` offline, scaled to a week (size grows linearly)."""
    seconds = int(hours * 3600)
    start = datetime.now(UTC) - timedelta(hours=hours)
    spool = fill_spool(directory / "week.sqlite", builder, seconds, start)
    stats = spool.stats()
    spool.close()
    size = (directory / "week.sqlite").stat().st_size
    return {"spool_mb_per_week": round(size * 7 * 24 / hours / 1e6, 1), "spool_hours_written": hours,
            "spool_bytes_per_reading": round(size / stats.readings, 1)}


def measure_drain(device: AgentDevice, events: int) -> dict[str, float]:
    builder = EventBuilder(device.device_id, device.key, "benchdrain")
    spool_path = device.directory / "drain.sqlite"
    spool = fill_spool(spool_path, builder, events, datetime.now(UTC) - timedelta(hours=2))
    readings = spool.stats().readings
    payloads = [(e.topic, e.payload) for e in spool.pending(0, events)]
    # The broker hop, like the reference: no ingest runs here to send receipts, so the agent
    # forgets an event at its PUBACK (the end-to-end drain with receipts is `motus bench faults`).
    config = device.write(
        SourcesSection(phone=PhoneSection(host="127.0.0.1", port=free_port(),
                                          token="bench-token-0123456789")),
        name="agent.bench.toml", log_level="WARNING", spool=SpoolSection(path=Path("drain.sqlite")),
        publish=PublishSection(receipts=False))
    agent = subprocess.Popen([sys.executable, "-m", "motus", "agent", "run", "--config", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = None
        while True:
            waiting = spool.stats().events
            now = time.monotonic()
            if first is None and waiting < events:
                first = (now, waiting)
            if waiting == 0:
                break
            if agent.poll() is not None:
                raise RuntimeError("the agent exited during the drain")
            time.sleep(0.01)
        assert first is not None
        ours = (first[1] * readings / events) / (now - first[0])
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        spool.close()
    # Reference: the same payloads from one paho client, QoS 1, no spool, 500 in flight.
    client = connect_device(device.base.broker, device.device_id)
    done = threading.Semaphore(0)
    client.on_publish = lambda *_: done.release()
    t0 = time.monotonic()
    inflight = 0
    for topic, payload in payloads:
        if inflight >= 500:
            done.acquire()
            inflight -= 1
        client.publish(topic, payload, qos=1)
        inflight += 1
    for _ in range(inflight):
        done.acquire()
    reference = readings / (time.monotonic() - t0)
    client.disconnect()
    client.loop_stop()
    return {"drain_readings_per_s": round(ours), "reference_paho_readings_per_s": round(reference),
            "drain_ratio_to_reference": round(ours / reference, 2)}


def run(seconds: float = 20.0, drain_events: int = 5000, spool_hours: float = 6.0) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="motus-bench-agent-"))
    stack, info = bench_stack(root)
    try:
        device = provision(info, root / "device")
        console.print(f"footprint: 20 signals x 5 Hz from the ELM327 emulator for {seconds:g} s")
        footprint = measure_footprint(device, seconds)
        console.print(f"spool: {spool_hours:g} h offline at 1 Hz x 20 signals")
        week = measure_spool_week(root, EventBuilder(device.device_id, device.key, "benchweek"), spool_hours)
        console.print(f"drain: {drain_events} events x 20 readings to the local broker")
        drain = measure_drain(device, drain_events)
    finally:
        stack.destroy()
    figures: dict[str, Any] = {**footprint, **week, **drain}
    for name, goal in GOALS.items():
        better_high = name == "drain_readings_per_s"
        figures[f"{name}_goal"] = goal
        figures[f"{name}_meets_goal"] = figures[name] >= goal if better_high else figures[name] <= goal
    return figures


def main(seconds: float = 20.0, drain_events: int = 5000, spool_hours: float = 6.0) -> None:
    figures = run(seconds, drain_events, spool_hours)
    for name in GOALS:
        console.print(f"{name:>22}: {figures[name]:>10}  (goal {'>=' if name.startswith('drain') else '<='} "
                      f"{GOALS[name]:g}, {'met' if figures[name + '_meets_goal'] else 'NOT met'})")
    print(json.dumps(figures))

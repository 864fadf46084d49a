"""The services harness: run a `motus` sub-command as its own process, wait until it is ready,
read its Prometheus metrics, stop it. The demo, the benchmarks and the tests start every
service through here, so each is started, awaited and stopped one way.

Readiness is asked, not guessed from logs: the ingest answers /readyz on its metrics port once
every worker holds its subscription; the API answers /healthz once it reaches the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from stack.errors import ServiceError
from stack.local import StackInfo, free_port

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness probe: ``url`` answers 2xx."""
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(200 <= response.status < 300)
        except (OSError, urllib.error.URLError):
            return False
    return probe


def service_env(info: StackInfo, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment, pointed at ``info``'s stack, plus MOTUS_ ``settings``
    (named without the prefix: ``{"database_url": ...}``)."""
    extra = {f"MOTUS_{k.upper()}": v for k, v in (settings or {}).items()}
    return {**os.environ, **info.env(), **extra}


@dataclass
class Service:
    """One `motus ...` process, its output appended to ``log_path``."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    #: Where this run's output starts in the log (the file may hold earlier runs).
    log_start: int = 0
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_text(self, tail: int = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")[self.log_start:]
        except OSError:
            return ""
        return text[-tail:] if tail else text

    def wait_ready(self, probe: Callable[[], bool], timeout_s: float = READY_TIMEOUT_S) -> Service:
        """Poll ``probe`` until it holds; ServiceError (with the log's tail) if the process ends
        first or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while not probe():
            if not self.running:
                raise ServiceError(f"{self.name} exited with {self.process.returncode} before it was "
                                   f"ready:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceError(f"{self.name} was not ready after {timeout_s:g} s:\n{self.log_text()}")
            time.sleep(0.05)
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait (SIGKILL after ``timeout_s``); the exit code."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        self.process.kill()
        self.process.wait()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def spawn(name: str, args: list[str], env: Mapping[str, str], log_path: Path) -> Service:
    """Start `motus *args` (this interpreter, so the same installation) with ``env``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "motus", *args], env=dict(env), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Service(name, process, log_path, start)


def start_ingest(info: StackInfo, log_path: Path, *, workers: int = 1,
                 settings: Mapping[str, str] | None = None) -> Service:
    """`motus ingest run` against the stack (with MOTUS_ ``settings``), ready once every worker
    is subscribed."""
    port = free_port()
    env = service_env(info, {**(settings or {}), "ingest_metrics_port": str(port)})
    service = spawn("ingest", ["ingest", "run", "--workers", str(workers)], env, log_path)
    service.ports["metrics"] = port
    return service.wait_ready(http_ok(f"http://127.0.0.1:{port}/readyz"))


def start_api(info: StackInfo, log_path: Path, *, settings: Mapping[str, str] | None = None) -> Service:
    """`motus api serve` against the stack (with MOTUS_ ``settings``), ready once /healthz answers."""
    api_port = free_port()
    service = spawn("api", ["api", "serve"],
                    service_env(info, {**(settings or {}), "api_port": str(api_port)}), log_path)
    service.ports["http"] = api_port
    return service.wait_ready(http_ok(f"http://127.0.0.1:{api_port}/healthz"))


@dataclass(frozen=True, slots=True)
class Metrics:
    """One scrape of a Prometheus endpoint (text exposition format, parsed by prometheus_client)."""

    samples: tuple[Sample, ...]

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` with these labels (0 when absent: a counter not yet incremented)."""
        for sample in self.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
        return 0.0

    def buckets(self, histogram: str) -> list[tuple[float, float]]:
        """Cumulative (upper bound, count) buckets of one histogram, in order."""
        found = [(float(s.labels["le"]), float(s.value)) for s in self.samples
                 if s.name == f"{histogram}_bucket"]
        return sorted(found)


def scrape(port: int, host: str = "127.0.0.1") -> Metrics:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return Metrics(tuple(s for family in text_string_to_metric_families(text) for s in family.samples))

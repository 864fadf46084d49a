"""`motus ingest run --workers N`: N worker processes in one shared-subscription group.

Each worker is its own MQTT client (``<client id>-w<i>``) with its own persistent session, so
the broker splits the devices' messages between them (MQTT 5 section 4.8.2, shared
subscriptions). A worker that dies is started again under the same client id: its session, and
with it every message it had received but not acknowledged, is waiting for it on the broker.
Metrics of all workers are served as one (prometheus_client multiprocess mode).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

log = logging.getLogger("motus.ingest")

RESTART_DELAY_S = 1.0


def worker_client_id(base: str, index: int) -> str:
    return f"{base}-w{index}"


def _worker_main(index: int, idle_exit_s: float | None) -> None:
    """One worker process: settings from the environment, stop on SIGTERM."""
    from ingest.consumer import IngestWorker, settle_heap  # imported after the metrics dir is set
    from ingest.errors import IngestError
    from ingest.settings import IngestSettings

    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s %(name)s[w{index}] %(levelname)s %(message)s")
    base = IngestSettings()
    settings = base.model_copy(update={"ingest_client_id": worker_client_id(base.ingest_client_id, index)})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides
    worker = IngestWorker(settings)
    try:
        worker.connect()
    except IngestError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from exc
    log.info("ingesting as %s", settings.ingest_client_id)
    settle_heap()
    try:
        totals = worker.run(stop, idle_exit_s=idle_exit_s)
    finally:
        worker.close()
    log.info("received %d events, stored %d (%d readings), duplicates %d, quarantined %d, "
             "readings refused %d", totals.received, totals.stored, totals.readings, totals.duplicates,
             sum(totals.quarantined.values()), sum(totals.readings_refused.values()))


class Supervisor:
    """Starts the workers, restarts the ones that die, stops them all on request."""

    def __init__(self, workers: int, idle_exit_s: float | None, metrics_dir: Path) -> None:
        self.count = workers
        self.idle_exit_s = idle_exit_s
        self.metrics_dir = metrics_dir
        self._context = multiprocessing.get_context("spawn")
        self._processes: dict[int, BaseProcess] = {}

    def _start(self, index: int) -> None:
        process = self._context.Process(target=_worker_main, args=(index, self.idle_exit_s),
                                        name=f"motus-ingest-w{index}")
        process.start()
        self._processes[index] = process
        log.info("worker w%d started (pid %s)", index, process.pid)

    def run(self, stop: threading.Event) -> int:
        """Supervise until ``stop``; returns the exit code (0 unless workers could not start)."""
        from prometheus_client import multiprocess

        for index in range(self.count):
            self._start(index)
        failures_in_a_row = 0
        while not stop.wait(0.2):
            finished = 0
            for index, process in list(self._processes.items()):
                if process.is_alive():
                    continue
                if process.pid is not None:
                    multiprocess.mark_process_dead(process.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
                if process.exitcode == 0:
                    finished += 1  # idle exit
                    continue
                log.warning("worker w%d (pid %s) died with %s; starting it again",
                            index, process.pid, process.exitcode)
                failures_in_a_row += 1
                if failures_in_a_row > 10 * self.count:
                    log.error("workers keep failing; giving up")
                    stop.set()
                    break
                time.sleep(RESTART_DELAY_S)
                self._start(index)
            if finished == self.count:
                break
            if all(p.is_alive() for p in self._processes.values()):
                failures_in_a_row = 0
        return self._stop_all()

    def _stop_all(self) -> int:
        for process in self._processes.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        codes = []
        for process in self._processes.values():
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
                process.join()
            codes.append(process.exitcode)
        return 0 if all(code == 0 for code in codes) else 1


def metrics_directory() -> Path:
    """A fresh directory for the workers' metric files (set before any worker imports them)."""
    path = Path(tempfile.mkdtemp(prefix="motus-ingest-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path

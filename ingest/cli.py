"""`motus ingest run|rollup`."""

from __future__ import annotations

import logging
import shutil
import signal
import threading

import psycopg
import typer
from prometheus_client import REGISTRY, CollectorRegistry

from connections.database import connect
from connections.errors import ConnectionsError
from connections.settings import LOCAL_STACK_HINT
from ingest import ops
from ingest.consumer import IngestWorker, settle_heap
from ingest.errors import IngestError
from ingest.settings import IngestSettings

app = typer.Typer(help="Ingest telemetry from the broker into the database.", no_args_is_help=True)


@app.command()
def run(
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes in the shared group."),
    idle_exit: float = typer.Option(
        0, help="Exit after this many seconds without messages (0: run until stopped)."
    ),
) -> None:
    """Consume signed events (MOTUS_MQTT_*), verify, dedupe and COPY them (MOTUS_DATABASE_URL)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = IngestSettings()
    try:
        connect(settings).close()  # say now, not from inside a worker, if the database is away
    except ConnectionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if workers > 1:
        raise typer.Exit(_run_supervised(settings, workers, idle_exit or None, stop))
    if settings.ingest_metrics_port:
        ops.serve(settings.ingest_metrics_port, REGISTRY, workers=1)
    worker = IngestWorker(settings)
    try:
        worker.connect()
    except IngestError as exc:
        hint = (f"\nMOTUS_MQTT_PASSWORD is not set; {LOCAL_STACK_HINT}"
                if settings.is_default("mqtt_password") else "")
        typer.echo(f"error: {exc}{hint}", err=True)
        raise typer.Exit(1) from exc
    logging.getLogger("motus.ingest").info(
        "ingesting from %s:%s as %s", settings.mqtt_host, settings.mqtt_port,
        settings.ingest_client_id,
    )
    settle_heap()
    try:
        totals = worker.run(stop, idle_exit_s=idle_exit or None)
    finally:
        worker.close()
    typer.echo(
        f"received {totals.received} events, stored {totals.stored} ({totals.readings} readings), "
        f"duplicates {totals.duplicates}, quarantined {sum(totals.quarantined.values())}, "
        f"readings refused {sum(totals.readings_refused.values())}"
    )


def _run_supervised(settings: IngestSettings, workers: int, idle_exit_s: float | None,
                    stop: threading.Event) -> int:
    from ingest.supervisor import Supervisor, metrics_directory

    metrics_dir = metrics_directory()
    try:
        if settings.ingest_metrics_port:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
            ops.serve(settings.ingest_metrics_port, registry, workers=workers)
        logging.getLogger("motus.ingest").info(
            "ingesting from %s:%s with %d workers as %s-w*", settings.mqtt_host, settings.mqtt_port,
            workers, settings.ingest_client_id,
        )
        return Supervisor(workers, idle_exit_s, metrics_dir).run(stop)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


@app.command()
def rollup(
    include_open: bool = typer.Option(False, help="Also roll up the current, unfinished hour."),
) -> None:
    """Recompute the hourly rollups of every hour that received readings (MOTUS_DATABASE_URL).

    Running ingest workers do this every minute for hours that have ended."""
    try:
        with connect(IngestSettings()) as conn:
            row = conn.execute(
                "SELECT motus_refresh_rollups(now() + CASE WHEN %s THEN INTERVAL '1 hour'"
                " ELSE INTERVAL '0' END)", (include_open,)).fetchone()
    except (ConnectionsError, psycopg.Error) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"rolled up {row[0] if row else 0} hour(s)")

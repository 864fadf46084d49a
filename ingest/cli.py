"""`motus ingest run`."""

from __future__ import annotations

import logging
import signal
import threading

import typer
from prometheus_client import start_http_server

from ingest.consumer import IngestError, IngestWorker
from ingest.settings import IngestSettings

app = typer.Typer(help="Ingest telemetry from the broker into the database.", no_args_is_help=True)


@app.command()
def run(
    idle_exit: float = typer.Option(
        0, help="Exit after this many seconds without messages (0: run until stopped)."
    ),
) -> None:
    """Consume signed events (MOTUS_MQTT_*), verify, dedupe and COPY them (MOTUS_DATABASE_URL)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = IngestSettings()
    if settings.ingest_metrics_port:
        start_http_server(settings.ingest_metrics_port, addr="127.0.0.1")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    worker = IngestWorker(settings)
    try:
        worker.connect()
    except IngestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    logging.getLogger("motus.ingest").info(
        "ingesting from %s:%s as %s", settings.mqtt_host, settings.mqtt_port,
        settings.ingest_client_id,
    )
    try:
        totals = worker.run(stop, idle_exit_s=idle_exit or None)
    finally:
        worker.close()
    typer.echo(
        f"received {totals.received} events, stored {totals.stored} ({totals.readings} readings), "
        f"duplicates {totals.duplicates}, quarantined {sum(totals.quarantined.values())}"
    )

"""`motus bench receipts`: what publishing the ingest's receipts costs a worker, with
``BulkClient.publish_many`` beside paho's ``publish`` one message at a time, in one run.

After each batch commits, the ingest sends every device in it a receipt (QoS 1, docs/protocol.md
"Receipts"). With a large fleet each device has about one event in a batch, so a batch of 1,000
events means about 1,000 receipts: their cost is paid per event. On a throwaway local
Mosquitto (the project's configuration), with the ingest's identity:

- reference: paho's ``Client.publish`` for each receipt, as the worker did before, with paho's
  window of 20 PUBLISHes in flight;
- ours: ``BulkClient.publish_many`` for the batch, with the broker's Receive Maximum as the
  window (1,000 in our broker's configuration).

Per receipt, the process's CPU (the caller and paho's network thread: packets, PUBACKs) from
the first publish of a batch until the broker acknowledged every receipt of it, and the wall time
of a batch. The two alternate, batch by batch, so the host's drift falls on both alike; the
medians are reported.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.agent import bench_stack
from connections.mqtt import connect, disconnect, make_bulk_client, make_client
from protocol.receipts import BootReceipt, encode_receipt
from protocol.topics import Channel, device_topic
from stack.local import StackInfo

console = Console(stderr=True)
WAIT_S = 60.0


def _receipts(devices: int, batch: int) -> list[tuple[str, bytes]]:
    """One receipt per device, as a batch holding one event of each makes them."""
    return [(device_topic(f"m{batch:06d}{device:019d}", Channel.RECEIPTS),
             encode_receipt([BootReceipt(f"boot{device % 97}", [(batch + 1, batch + 1)])]))
            for device in range(devices)]


def _drained(client: mqtt.Client) -> None:
    deadline = time.monotonic() + WAIT_S
    while client._out_messages:
        if time.monotonic() > deadline:
            left = len(client._out_messages)
            raise RuntimeError(f"{left} receipts still unacknowledged after {WAIT_S:g} s")
        time.sleep(0.002)


def _one_batch(client: mqtt.Client, send: Callable[[list[tuple[str, bytes]]], None],
               receipts: list[tuple[str, bytes]]) -> tuple[float, float]:
    """(CPU µs per receipt, wall ms) of sending ``receipts`` until all are acknowledged."""
    cpu, wall = time.process_time(), time.perf_counter()
    send(receipts)
    _drained(client)
    return ((time.process_time() - cpu) / len(receipts) * 1e6, (time.perf_counter() - wall) * 1e3)


def run(info: StackInfo, devices: int, batches: int) -> dict[str, Any]:
    endpoint = info.ingest_endpoint
    reference = make_client(endpoint, "bench-receipts-paho")
    bulk = make_bulk_client(endpoint, "bench-receipts-bulk", lambda _messages: None)
    connect(reference, endpoint)
    connect(bulk, endpoint)

    def one_by_one(receipts: list[tuple[str, bytes]]) -> None:
        for topic, payload in receipts:
            reference.publish(topic, payload, qos=1)

    ways: dict[str, tuple[mqtt.Client, Callable[[list[tuple[str, bytes]]], None]]] = {
        "paho": (reference, one_by_one), "bulk": (bulk, bulk.publish_many)}
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("receipts, the two ways in turn", total=batches)
            for batch in range(batches + 1):
                receipts = _receipts(devices, batch)
                for name, (client, send) in ways.items():
                    measured = _one_batch(client, send, receipts)
                    if batch:  # the first batch of each warms up
                        figures[name].append(measured)
                if batch:
                    progress.advance(task)
        windows = {"paho": reference._max_inflight_messages, "bulk": bulk._max_inflight_messages}
    finally:
        disconnect(reference)
        disconnect(bulk)
    cpu = {name: statistics.median(c for c, _ in values) for name, values in figures.items()}
    wall = {name: statistics.median(w for _, w in values) for name, values in figures.items()}
    return {
        "receipts_per_batch": devices, "batches": batches,
        "paho_cpu_us_per_receipt": round(cpu["paho"], 1), "bulk_cpu_us_per_receipt": round(cpu["bulk"], 1),
        "paho_batch_ms": round(wall["paho"], 1), "bulk_batch_ms": round(wall["bulk"], 1),
        "paho_window": windows["paho"], "bulk_window": windows["bulk"],
        "cpu_ratio": round(cpu["paho"] / cpu["bulk"], 2),
    }


def main(devices: int, batches: int) -> None:
    with tempfile.TemporaryDirectory(prefix="motus-bench-receipts-") as directory:
        stack, info = bench_stack(Path(directory))
        try:
            figures = run(info, devices, batches)
        finally:
            stack.down()
    table = Table(title=f"receipts: {devices} a batch, median of {batches} batches")
    for column in ("", "CPU µs/receipt", "batch ms", "window"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("paho publish, one by one", str(figures["paho_cpu_us_per_receipt"]),
                  str(figures["paho_batch_ms"]), str(figures["paho_window"]))
    table.add_row("BulkClient.publish_many", str(figures["bulk_cpu_us_per_receipt"]),
                  str(figures["bulk_batch_ms"]), str(figures["bulk_window"]))
    Console().print(table)
    Console().print(f"CPU per receipt: {figures['cpu_ratio']}x less with publish_many")
    print(json.dumps(figures))

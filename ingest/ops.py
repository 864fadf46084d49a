"""The ingest's operations endpoint: Prometheus metrics at /metrics, readiness at /readyz.

Ready means every worker holds its subscription: /readyz answers 200 then, 503 before and
whenever a worker lost the broker or died and was not back yet. Load balancers, the services
harness and systemd-style probes wait on it instead of reading logs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

READY_METRIC = "motus_ingest_ready_workers"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds are not news."""


def ready_workers(registry: CollectorRegistry) -> float:
    return registry.get_sample_value(READY_METRIC) or 0.0


def serve(port: int, registry: CollectorRegistry, workers: int) -> WSGIServer:
    """Serve /metrics and /readyz on 127.0.0.1:``port`` from a daemon thread."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/readyz":
            ready = ready_workers(registry)
            ok = ready >= workers
            body = f"{'ready' if ok else 'not ready'}: {ready:g} of {workers} workers subscribed\n"
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8")])
            return [body.encode()]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    server = make_server("127.0.0.1", port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="ingest-ops", daemon=True).start()
    return server

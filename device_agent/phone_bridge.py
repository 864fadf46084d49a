"""The phone bridge: an HTTP endpoint on the agent for phones.

- ``GET /torque/{token}?...``: Torque Pro's "upload to web server" (answers ``OK!``).
- ``POST /v1/signals/{token}``: JSON for custom apps, DIMO's data shape
  ``{"signals": [{"name", "timestamp", "value"}]}``.

The token in the URL is the device's bridge secret (agent.toml ``[phone] token``). Readings are
checked against the catalog one by one, signed and committed to the spool before the answer, so a
phone that got its OK can forget what it sent. A bad value (not a number, out of range, a timestamp
out of bounds, ...) costs only itself: the good readings of the same request are stored, the bad
ones are logged and counted (``app.state.counters``). Torque Pro gets ``OK!`` whenever its upload as
a whole is usable (it re-sends anything else, so one glitching sensor would stall it); a JSON client
gets what was stored and what was rejected, and a 422 only when every reading is bad.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from device_agent.agent import DurableSink
from device_agent.errors import SpoolError
from device_agent.torque import TorqueError, parse_upload
from protocol.catalog import Catalog, load_catalog
from protocol.envelope import SignalReading
from protocol.errors import InvalidSignal
from protocol.limits import MAX_SIGNALS_PER_EVENT
from protocol.validation import check_signals

log = logging.getLogger(__name__)


class SignalsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signals: list[SignalReading] = Field(min_length=1, max_length=MAX_SIGNALS_PER_EVENT)


class RejectedReading(BaseModel):
    index: int  # position in the request's ``signals``
    name: str
    reason: str  # the stable reason code (docs/protocol.md, "Rejections")
    detail: str

    def __str__(self) -> str:
        return f"signals.{self.index} ({self.name}): {self.reason}: {self.detail}"


class Stored(BaseModel):
    stored: int
    event_ids: list[str]
    rejected: list[RejectedReading] = Field(default_factory=list)


@dataclass
class BridgeCounters:
    """What the bridge took in since it started: requests answered 200, readings committed to the
    spool, values set aside as bad (Torque values that are not numbers, readings the catalog
    refuses)."""

    uploads: int = 0
    readings_stored: int = 0
    values_dropped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, *, uploads: int = 0, stored: int = 0, dropped: int = 0) -> None:
        with self._lock:  # FastAPI runs the handlers in a thread pool
            self.uploads += uploads
            self.readings_stored += stored
            self.values_dropped += dropped


def _bare(detail: str, name: str) -> str:
    """``check_signals``' message for a one-reading list without its locator (``data.signals.0``)."""
    for prefix in (f"data.signals.0 ({name}): ", "data.signals.0: ", "data.signals.0."):
        if detail.startswith(prefix):
            return detail.removeprefix(prefix)
    return detail


def screen(
    readings: Sequence[SignalReading], catalog: Catalog, now: datetime
) -> tuple[list[SignalReading], list[RejectedReading]]:
    """``readings`` split into those that pass the catalog's checks and the refused ones, with why."""
    good: list[SignalReading] = []
    bad: list[RejectedReading] = []
    for index, reading in enumerate(readings):
        try:
            check_signals([reading], catalog, now)
        except InvalidSignal as exc:
            bad.append(RejectedReading(index=index, name=reading.name, reason=exc.reason.value,
                                       detail=_bare(exc.detail, reading.name)))
        else:
            good.append(reading)
    return good, bad


def create_bridge(token: str, sink: DurableSink, clock: Callable[[], datetime] | None = None) -> FastAPI:
    if len(token) < 16:
        raise ValueError("the phone bridge token must be at least 16 characters")
    now = clock or (lambda: datetime.now(UTC))
    catalog = load_catalog()
    app = FastAPI(title="Motus phone bridge", version="1")
    counters = BridgeCounters()
    app.state.counters = counters

    def authorise(given: str) -> None:
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(status_code=403, detail="unknown token")

    def store(readings: list[SignalReading]) -> list[str]:
        if not readings:
            return []
        try:
            ids = sink.commit(readings)
        except SpoolError as exc:
            log.error("phone bridge: %s", exc)
            raise HTTPException(status_code=503, detail="the agent cannot store readings now") from exc
        counters.count(stored=len(readings))
        return ids

    @app.get("/torque/{given}", response_class=PlainTextResponse)
    def torque(given: str, request: Request) -> str:
        authorise(given)
        try:
            upload = parse_upload(list(request.query_params.multi_items()))
        except TorqueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        good, refused = screen(upload.readings, catalog, now())
        store(good)  # a 503 here: Torque sends the upload again, nothing is counted yet
        dropped = upload.rejected + [(r.name, f"{r.reason}: {r.detail}") for r in refused]
        if dropped:
            log.warning("phone bridge: Torque upload (session %s) dropped %d value(s): %s",
                        upload.session or "?", len(dropped),
                        "; ".join(f"{key}: {reason}" for key, reason in dropped))
        counters.count(uploads=1, dropped=len(dropped))
        return "OK!"

    @app.post("/v1/signals/{given}", response_model=Stored)
    def signals(given: str, body: SignalsBody) -> Stored:
        authorise(given)
        good, refused = screen(body.signals, catalog, now())
        reasons = "; ".join(str(r) for r in refused)
        if not good:
            counters.count(dropped=len(refused))
            raise HTTPException(status_code=422, detail=reasons)
        ids = store(good)
        if refused:
            log.warning("phone bridge: JSON upload dropped %d reading(s): %s", len(refused), reasons)
        counters.count(uploads=1, dropped=len(refused))
        return Stored(stored=len(good), event_ids=ids, rejected=refused)

    return app


class BridgeServer:
    """Uvicorn in a thread, stoppable."""

    name = "phone"

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)

    def run(self, stop: threading.Event) -> None:
        thread = threading.Thread(target=self.server.run, name="phone-bridge", daemon=True)
        thread.start()
        stop.wait()
        self.server.should_exit = True
        thread.join(timeout=5)

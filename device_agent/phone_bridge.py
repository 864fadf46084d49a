"""The phone bridge: an HTTP endpoint on the agent for phones.

- ``GET /torque/{token}?...``: Torque Pro's "upload to web server" (answers ``OK!``).
- ``POST /v1/signals/{token}``: JSON for custom apps, DIMO's data shape
  ``{"signals": [{"name", "timestamp", "value"}]}``.

The token in the URL is the device's bridge secret (agent.toml ``[phone] token``). Readings are
checked against the catalog, signed and committed to the spool before the answer, so a phone that
got its OK can forget what it sent.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from device_agent.agent import DurableSink
from device_agent.errors import SpoolError
from device_agent.torque import TorqueError, parse_upload
from protocol.catalog import load_catalog
from protocol.envelope import SignalReading
from protocol.errors import InvalidSignal
from protocol.limits import MAX_SIGNALS_PER_EVENT
from protocol.validation import check_signals

log = logging.getLogger(__name__)


class SignalsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signals: list[SignalReading] = Field(min_length=1, max_length=MAX_SIGNALS_PER_EVENT)


class Stored(BaseModel):
    stored: int
    event_ids: list[str]


def create_bridge(token: str, sink: DurableSink, clock: Callable[[], datetime] | None = None) -> FastAPI:
    if len(token) < 16:
        raise ValueError("the phone bridge token must be at least 16 characters")
    now = clock or (lambda: datetime.now(UTC))
    catalog = load_catalog()
    app = FastAPI(title="Motus phone bridge", version="1")

    def authorise(given: str) -> None:
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(status_code=403, detail="unknown token")

    def store(readings: list[SignalReading]) -> list[str]:
        try:
            check_signals(readings, catalog, now())
        except InvalidSignal as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        try:
            return sink.commit(readings)
        except SpoolError as exc:
            log.error("phone bridge: %s", exc)
            raise HTTPException(status_code=503, detail="the agent cannot store readings now") from exc

    @app.get("/torque/{given}", response_class=PlainTextResponse)
    def torque(given: str, request: Request) -> str:
        authorise(given)
        try:
            upload = parse_upload(list(request.query_params.multi_items()))
        except TorqueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        if upload.readings:
            store(upload.readings)
        return "OK!"

    @app.post("/v1/signals/{given}", response_model=Stored)
    def signals(given: str, body: SignalsBody) -> Stored:
        authorise(given)
        ids = store(body.signals)
        return Stored(stored=len(body.signals), event_ids=ids)

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

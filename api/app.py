"""The FastAPI application. ``create_app`` is the only entry point; settings come in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from uuid import UUID

import psycopg
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api.schemas import ApiError, LatestSignal, LatestSignals
from api.settings import ApiSettings
from protocol.catalog import load_catalog


def create_app(settings: ApiSettings) -> FastAPI:
    pool = AsyncConnectionPool(
        settings.database_url, min_size=1, max_size=settings.api_pool_max, open=False,
        timeout=settings.api_db_timeout_s,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await pool.open()
        try:
            yield
        finally:
            await pool.close()

    # Swagger UI and ReDoc served from assets in the fastapi-offline package: /docs works on a
    # machine without internet, and the browser asks no CDN.
    app = FastAPIOffline(
        title="Motus data API",
        version="0.1.0",
        description="Vehicle data that drivers own and license. Values are in catalog units.",
        lifespan=lifespan,
    )
    catalog = load_catalog()

    async def database_unavailable(_r: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "the database is unavailable; retry shortly"}, 503)

    app.add_exception_handler(psycopg.OperationalError, database_unavailable)
    app.add_exception_handler(PoolTimeout, database_unavailable)

    @app.get("/healthz", tags=["operations"])
    async def health() -> dict[str, str]:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        return {"status": "ok"}

    @app.get(
        "/v1/vehicles/{vehicle_id}/signals/latest",
        response_model=LatestSignals,
        responses={404: {"model": ApiError}, 400: {"model": ApiError}},
        tags=["signals"],
        summary="The newest value of each signal of a vehicle",
    )
    async def latest_signals(
        vehicle_id: UUID,
        name: Annotated[
            list[str] | None, Query(description="Only these signals (repeatable)")
        ] = None,
    ) -> LatestSignals:
        wanted = sorted(set(name)) if name else None
        if wanted:
            unknown = [n for n in wanted if n not in catalog]
            if unknown:
                raise HTTPException(400, f"unknown signal name(s): {', '.join(unknown)}")
        async with pool.connection() as conn:
            exists = await (await conn.execute(
                "SELECT 1 FROM vehicles WHERE id = %s", (vehicle_id,)
            )).fetchone()
            if exists is None:
                raise HTTPException(404, f"vehicle {vehicle_id} not found")
            cursor = await conn.execute(
                "SELECT name, ts, value FROM signals_latest WHERE vehicle_id = %s"
                " AND (%s::text[] IS NULL OR name = ANY(%s::text[])) ORDER BY name",
                (vehicle_id, wanted, wanted),
            )
            rows: list[tuple[Any, ...]] = await cursor.fetchall()
        signals = []
        for signal_name, ts, value in rows:
            spec = catalog.get(signal_name)
            if spec is None:  # a name retired from the catalog since it was stored
                continue
            signals.append(LatestSignal(
                name=signal_name, value=value, unit=spec.unit, timestamp=ts,
                privilege=spec.privilege.value,
            ))
        return LatestSignals(vehicle_id=vehicle_id, signals=signals)

    return app

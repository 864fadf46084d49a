"""The FastAPI application. ``create_app`` is the only entry point; settings come in.

Routes are thin: who the caller is (api/auth.py), what they may read (api/access.py), the reads
and the access log (api/queries.py), errors as RFC 9457 problems (api/problems.py), the shared
dependencies (api/deps.py); the routes live in api/routes_*.py."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from psycopg_pool import ConnectionPool

from api import routes_data, routes_me, routes_unions
from api.deps import Db
from api.problems import install
from api.settings import ApiSettings


def create_app(settings: ApiSettings) -> FastAPI:
    pools: list[ConnectionPool[Any]] = []  # one per run of the app (a pool cannot be reopened)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        pool: ConnectionPool[Any] = ConnectionPool(
            settings.database_url, min_size=1, max_size=settings.api_pool_max, open=False,
            timeout=settings.api_db_timeout_s)
        pool.open()
        pools.append(pool)
        try:
            yield
        finally:
            pools.remove(pool)
            pool.close()

    # Swagger UI and ReDoc served from assets in the fastapi-offline package: /docs works on a
    # machine without internet, and the browser asks no CDN.
    app = FastAPIOffline(
        title="Motus data API",
        version="0.2.0",
        description=(
            "Vehicle data that drivers own and license. A developer reads a vehicle only while one "
            "of their licences covers it (membership, the driver's knob, the union's bylaws, "
            "strikes), only the signals in that licence's scope, and every read is logged for the "
            "driver to see. Values are in catalog units. Errors are RFC 9457 problem documents."),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.pools = pools
    install(app)

    @app.get("/healthz", tags=["operations"])
    def health(conn: Db) -> dict[str, str]:
        conn.execute("SELECT 1")
        return {"status": "ok"}

    app.include_router(routes_me.router)
    app.include_router(routes_data.router)
    app.include_router(routes_unions.router)
    return app

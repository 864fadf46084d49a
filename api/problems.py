"""RFC 9457 problem details: every error the API answers is ``application/problem+json`` with
``type``, ``title``, ``status``, ``detail`` and ``instance``; bad input is a 4xx, never a 500."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import ApiError
from registry.errors import RegistryError

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://motus.example/problems/"


class Problem(BaseModel):
    """RFC 9457 section 3."""

    type: str = Field(default="about:blank", examples=[TYPE_BASE + "not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["no vehicle 5b0c… is licensed to you"])
    instance: str | None = Field(default=None, examples=["/v1/vehicles/5b0c…/signals/latest"])


class ApiProblem(ApiError):
    """An error to answer as a problem document; ``kind`` names its ``type``."""

    def __init__(self, status: int, detail: str, kind: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.kind, self.headers = status, detail, kind, headers or {}


def problem(request: Request, status: int, detail: str, kind: str | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(type=TYPE_BASE + kind if kind else "about:blank", title=HTTPStatus(status).phrase,
                   status=status, detail=detail, instance=request.url.path)
    return JSONResponse(body.model_dump(), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid"))


def install(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return problem(request, exc.status, exc.detail, exc.kind, exc.headers)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem(request, exc.status_code, str(exc.detail), None, dict(exc.headers or {}))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = "; ".join(_field(e) for e in exc.errors())
        return problem(request, 400, detail or "the request is not valid", "invalid-request")

    async def on_refused(request: Request, exc: Exception) -> JSONResponse:  # the registry's rules
        return problem(request, 400, str(exc), "invalid-request")

    async def on_bad_value(request: Request, exc: Exception) -> JSONResponse:
        # values the database cannot hold (a NUL in text, a number out of range): the request's fault
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "a value out of range"
        return problem(request, 400, f"a value in the request cannot be stored: {reason}", "invalid-request")

    async def on_conflict(request: Request, _exc: Exception) -> JSONResponse:
        return problem(request, 409, "another request changed the same thing at the same time; retry",
                       "conflict")

    async def on_database(request: Request, _exc: Exception) -> JSONResponse:
        return problem(request, 503, "the database is unavailable; retry shortly", "unavailable",
                       {"Retry-After": "5"})

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(RegistryError, on_refused)
    app.add_exception_handler(psycopg.DataError, on_bad_value)
    app.add_exception_handler(psycopg.IntegrityError, on_conflict)
    app.add_exception_handler(psycopg.OperationalError, on_database)
    app.add_exception_handler(PoolTimeout, on_database)


#: For route declarations: the problem documents a route may answer.
def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": Problem, "content": {MEDIA_TYPE: {}},
                     "description": HTTPStatus(status).phrase} for status in statuses}

"""`motus api serve`."""

from __future__ import annotations

import json

import typer
import uvicorn

from api.app import create_app
from api.settings import ApiSettings

app = typer.Typer(help="The data API.", no_args_is_help=True)


@app.command()
def openapi() -> None:
    """Print the API's OpenAPI document (JSON): routes, schemas, security schemes, problems."""
    typer.echo(json.dumps(create_app(ApiSettings()).openapi(), indent=2))


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default MOTUS_API_HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default MOTUS_API_PORT or 8000)."),
) -> None:
    """Serve the data API (OpenAPI docs at /docs) over MOTUS_DATABASE_URL."""
    settings = ApiSettings()
    uvicorn.run(create_app(settings), host=host or settings.api_host,
                port=port or settings.api_port, log_level="info")

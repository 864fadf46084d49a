"""`motus broker config|init|certs`: set up a production Mosquitto the way the stack runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console

from broker_config import BrokerLayout, dynsec, render_mosquitto_conf
from broker_config.tls import ensure_dev_pki

app = typer.Typer(help="Mosquitto configuration, identities and development TLS.",
                  no_args_is_help=True)
console = Console()
_DEFAULT = BrokerLayout()


@app.command()
def config(
    service_port: int = typer.Option(_DEFAULT.service_port, help="Services' listener (loopback)."),
    tls_port: int = typer.Option(_DEFAULT.tls_port, help="Devices' MQTT over TLS listener."),
    ws_port: int = typer.Option(_DEFAULT.ws_port, help="Phone apps' secure WebSocket listener."),
    cert_dir: Path = typer.Option(_DEFAULT.cert_file.parent, help="Holds server.crt, server.key."),
    dynsec_file: Path = typer.Option(_DEFAULT.dynsec_file, help="The identities file."),
    plugin: Path = typer.Option(_DEFAULT.dynsec_plugin, help="mosquitto_dynamic_security.so"),
) -> None:
    """Print mosquitto.conf for a production broker (same template as the local stack)."""
    typer.echo(render_mosquitto_conf(BrokerLayout(
        dynsec_plugin=plugin, dynsec_file=dynsec_file, cert_file=cert_dir / "server.crt",
        key_file=cert_dir / "server.key", service_port=service_port, tls_port=tls_port,
        ws_port=ws_port,
    )), nl=False)


@app.command()
def init(
    dynsec_file: Path = typer.Argument(..., help="Where to write the identities file."),
) -> None:
    """Write a new identities file (admin and ingest, nobody else) and print their passwords
    as MOTUS_ exports. Refuses to overwrite an existing file."""
    admin = dynsec.Credential.generate(dynsec.ADMIN_USERNAME)
    ingest = dynsec.Credential.generate(dynsec.INGEST_USERNAME)
    try:
        fd = os.open(dynsec_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot create {dynsec_file}: {exc.strerror}")
        raise typer.Exit(1) from exc
    with os.fdopen(fd, "w") as out:
        json.dump(dynsec.initial_config(admin, ingest), out, indent=2)
    typer.echo(f"export MOTUS_BROKER_ADMIN_USERNAME={admin.username}")
    typer.echo(f"export MOTUS_BROKER_ADMIN_PASSWORD={admin.password}")
    typer.echo(f"export MOTUS_MQTT_USERNAME={ingest.username}")
    typer.echo(f"export MOTUS_MQTT_PASSWORD={ingest.password}")


@app.command()
def certs(
    directory: Path = typer.Argument(..., help="Where to write ca.crt, server.crt, server.key."),
    host: list[str] = typer.Option(["localhost", "127.0.0.1"], help="Broker host names or IPs."),
) -> None:
    """Make a development CA and a server certificate (kept if already there)."""
    files = ensure_dev_pki(directory, host)
    console.print(f"CA (give it to devices): {files.ca_file}")
    console.print(f"server certificate and key: {files.cert_file}, {files.key_file}")

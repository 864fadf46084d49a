"""`motus device register|revoke|list`: provisioning for network operators."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Literal

import psycopg
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.table import Table

from broker_config import dynsec
from broker_config.admin import BrokerAdmin, BrokerAdminError
from ingest.registry import list_devices
from motus.provisioning import ProvisioningError, provision_device, revoke, write_agent_files
from protocol.endpoint import MqttEndpoint
from protocol.signing import public_key_bytes

app = typer.Typer(help="Register, revoke and list devices.", no_args_is_help=True)
console = Console()


class ProvisioningSettings(BaseSettings):
    """MOTUS_ variables; `motus stack env` prints them for the local stack."""

    model_config = SettingsConfigDict(env_prefix="MOTUS_")

    database_url: str = "postgresql://motus@127.0.0.1:5432/motus"
    #: The broker's service listener, where the admin identity connects.
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    broker_admin_username: str = dynsec.ADMIN_USERNAME
    broker_admin_password: str | None = Field(default=None, repr=False)
    #: Where devices connect (written into their agent config): the TLS listener.
    device_mqtt_host: str = "127.0.0.1"
    device_mqtt_port: int = 8883
    device_mqtt_transport: Literal["tcp", "websockets"] = "tcp"
    device_mqtt_tls: bool = True
    #: The CA devices verify the broker with; unset: their system trust store.
    device_mqtt_ca_file: Path | None = None

    def admin_endpoint(self) -> MqttEndpoint:
        return MqttEndpoint(host=self.mqtt_host, port=self.mqtt_port, tls=self.mqtt_tls,
                            ca_file=self.mqtt_ca_file, username=self.broker_admin_username,
                            password=self.broker_admin_password)

    def device_endpoint(self) -> MqttEndpoint:
        return MqttEndpoint(host=self.device_mqtt_host, port=self.device_mqtt_port,
                            transport=self.device_mqtt_transport, tls=self.device_mqtt_tls,
                            ca_file=self.device_mqtt_ca_file)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _parse_public_key(text: str) -> bytes:
    """A raw 32-byte Ed25519 public key (RFC 8032) as 64 hex digits or base64."""
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise typer.BadParameter("expected a raw 32-byte Ed25519 public key, as hex or base64")
    return raw


@app.command()
def register(
    owner: str = typer.Option(..., "--owner", help="The driver's email (created if new)."),
    vehicle: str | None = typer.Option(None, "--vehicle", help="VIN to pair with (created if new)."),
    public_key: str | None = typer.Option(
        None, help="The device's own Ed25519 public key (hex or base64); default: make a key pair."),
    out: Path | None = typer.Option(
        None, help="Directory for agent.toml (and device.key). Default: devices/<device id>."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Register a device: registry row, broker identity with its own topics, agent config."""
    settings = ProvisioningSettings()
    private_key: Ed25519PrivateKey | None = None
    if public_key:
        raw_key = _parse_public_key(public_key)  # the device keeps its own private key
    else:
        private_key = Ed25519PrivateKey.generate()
        raw_key = public_key_bytes(private_key)
    try:
        with psycopg.connect(settings.database_url) as conn, \
                BrokerAdmin(settings.admin_endpoint()) as admin:
            device = provision_device(conn, admin, email=owner, public_key=raw_key, vin=vehicle)
    except (ProvisioningError, BrokerAdminError, psycopg.OperationalError) as exc:
        raise _fail(str(exc)) from exc
    directory = out or Path("devices") / device.device_id
    config_path = write_agent_files(directory, device, settings.device_endpoint(), private_key)
    summary = {
        "device_id": device.device_id,
        "owner": device.owner_email,
        "vehicle_id": str(device.vehicle_id) if device.vehicle_id else None,
        "vin": device.vin,
        "public_key": base64.b64encode(device.public_key).decode(),
        "mqtt_url": settings.device_endpoint().describe(),
        "mqtt_username": device.credential.username,
        "mqtt_password": device.credential.password,
        "agent_config": str(config_path),
        "private_key_file": str(directory / "device.key") if private_key else None,
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console.print(f"registered device [bold]{device.device_id}[/bold] for {owner}"
                  + (f", paired with {device.vin}" if device.vin else " (not paired yet)"))
    console.print(f"agent config (holds the broker password): {config_path}")


@app.command("revoke")
def revoke_command(
    device_id: str = typer.Argument(..., help="The device to shut out."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Revoke a device: ingest refuses its events, the broker refuses and disconnects it."""
    settings = ProvisioningSettings()
    try:
        with psycopg.connect(settings.database_url) as conn, \
                BrokerAdmin(settings.admin_endpoint()) as admin:
            revoke(conn, admin, device_id)
    except (ProvisioningError, BrokerAdminError, psycopg.OperationalError) as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps({"device_id": device_id, "revoked": True}))
    else:
        console.print(f"revoked {device_id}: the broker refused and disconnected it, ingest "
                      "refuses its events")


@app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    """List registered devices with owner, vehicle and state."""
    settings = ProvisioningSettings()
    try:
        with psycopg.connect(settings.database_url) as conn:
            devices = list_devices(conn)
    except psycopg.OperationalError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps([{
            "device_id": d.device_id, "owner": d.owner_email, "vin": d.vin,
            "vehicle_id": str(d.vehicle_id) if d.vehicle_id else None,
            "created_at": d.created_at.isoformat(),
            "revoked_at": d.revoked_at.isoformat() if d.revoked_at else None,
        } for d in devices]))
        return
    table = Table(title=f"{len(devices)} devices")
    for column in ("device", "owner", "vin", "registered", "state"):
        table.add_column(column, no_wrap=True)
    for d in devices:
        state = f"revoked {d.revoked_at:%Y-%m-%d %H:%M}" if d.revoked_at else "active"
        table.add_row(d.device_id, d.owner_email, d.vin or "-", f"{d.created_at:%Y-%m-%d %H:%M}",
                      state)
    console.print(table)

"""`motus device register|revoke|list`: provisioning for network operators."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich import box
from rich.console import Console
from rich.table import Table

from broker_config.admin import BrokerAdmin
from broker_config.errors import BrokerConfigError
from connections.database import connect
from connections.errors import ConnectionsError
from connections.settings import LOCAL_STACK_HINT, DatabaseSettings
from protocol.signing import public_key_bytes
from registry.developers import add_developer, list_developers
from registry.errors import InvalidIdentity, RegistryError
from registry.identity import check_email, check_vin
from registry.provisioning import provision_device, revoke, write_agent_files
from registry.settings import ProvisioningSettings
from registry.store import list_devices

app = typer.Typer(help="Register, revoke and list devices.", no_args_is_help=True)
console = Console()


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _registry(settings: ProvisioningSettings) -> Iterator[tuple[psycopg.Connection[tuple[object, ...]],
                                                                BrokerAdmin]]:
    """The database and the broker admin, or an error that says what to set or run."""
    try:
        with connect(settings) as conn, BrokerAdmin(settings.admin_endpoint()) as admin:
            yield conn, admin
    except BrokerConfigError as exc:
        hint = (f"\nMOTUS_BROKER_ADMIN_PASSWORD is not set; {LOCAL_STACK_HINT}"
                if settings.is_default("broker_admin_password") else "")
        raise _fail(f"{exc}{hint}") from exc
    except (ConnectionsError, RegistryError) as exc:
        raise _fail(str(exc)) from exc


def _parse_public_key(text: str) -> bytes:
    """A raw 32-byte Ed25519 public key (RFC 8032) as 64 hex digits or base64."""
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise typer.BadParameter("expected a raw 32-byte Ed25519 public key, as hex or base64")
    return raw


def _inside_work_tree(path: Path) -> Path | None:
    """The root of the git work tree holding ``path``, if any."""
    for folder in [path.resolve(), *path.resolve().parents]:
        if (folder / ".git").exists():
            return folder
    return None


@app.command()
def register(
    owner: str = typer.Option(..., "--owner", help="The driver's e-mail address (created if new)."),
    vehicle: str | None = typer.Option(None, "--vehicle", help="VIN to pair with (created if new)."),
    public_key: str | None = typer.Option(
        None, help="The device's own Ed25519 public key (hex or base64); default: make a key pair."),
    out: Path | None = typer.Option(
        None, help="Directory for agent.toml (and device.key). "
                   "Default: MOTUS_DEVICES_DIR (~/.config/motus/devices)/<device id>."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Register a device: registry row, broker identity with its own topics, agent config."""
    try:
        check_email(owner)
        if vehicle is not None:
            check_vin(vehicle)
    except InvalidIdentity as exc:
        raise _fail(str(exc), code=2) from exc
    settings = ProvisioningSettings()
    private_key: Ed25519PrivateKey | None = None
    if public_key:
        raw_key = _parse_public_key(public_key)  # the device keeps its own private key
    else:
        private_key = Ed25519PrivateKey.generate()
        raw_key = public_key_bytes(private_key)
    with _registry(settings) as (conn, admin):
        try:
            device = provision_device(conn, admin, email=owner, public_key=raw_key, vin=vehicle)
        except RegistryError as exc:
            raise _fail(str(exc)) from exc
    directory = out or settings.devices_dir / device.device_id
    config_path = write_agent_files(directory, device, settings.device_endpoint(), private_key)
    tree = _inside_work_tree(directory)
    if tree is not None:
        typer.echo(f"warning: {directory} is inside the work tree {tree}: agent.toml holds the "
                   "device's broker password; keep it out of version control", err=True)
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
    console.print(f"registered device [bold]{device.device_id}[/bold] for {device.owner_email}"
                  + (f", paired with {device.vin}" if device.vin else " (not paired yet)"))
    console.print(f"agent config (holds the broker password, mode 0600): {config_path}",
                  soft_wrap=True)
    console.print("next: add a [sources.*] section to it (docs/agent.md), then "
                  f"`motus agent run --config {config_path}`", soft_wrap=True)


@app.command("revoke")
def revoke_command(
    device_id: str = typer.Argument(..., help="The device to shut out."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Revoke a device: ingest refuses its events, the broker refuses and disconnects it."""
    with _registry(ProvisioningSettings()) as (conn, admin):
        try:
            revoke(conn, admin, device_id)
        except RegistryError as exc:
            raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps({"device_id": device_id, "revoked": True}))
    else:
        console.print(f"revoked {device_id}: the broker refused and disconnected it, ingest "
                      "refuses its events")


@app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    """List registered devices with owner, vehicle and state."""
    try:
        with connect(ProvisioningSettings()) as conn:
            devices = list_devices(conn)
    except ConnectionsError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps([d.to_json() for d in devices]))
        return
    # Ids and VINs are copied by people: never wrapped or cut; the e-mail folds if it must.
    table = Table(title=f"{len(devices)} devices", box=box.SIMPLE_HEAD)
    table.add_column("device", no_wrap=True, min_width=25)
    table.add_column("vin", no_wrap=True, min_width=17)
    table.add_column("owner", overflow="fold")
    table.add_column("since", no_wrap=True)
    for d in devices:
        since = f"{d.created_at:%Y-%m-%d}"
        if d.revoked_at:
            since += f"\n[red]revoked {d.revoked_at:%Y-%m-%d}[/red]"
        table.add_row(d.device_id, d.vin or "-", d.owner_email, since)
    console.print(table)


developer_app = typer.Typer(help="Developer accounts: the organisations that hold licences.",
                            no_args_is_help=True)


@developer_app.command("add")
def developer_add(
    organisation: str = typer.Argument(..., help="The organisation's name."),
    contact: str = typer.Option(..., help="A contact e-mail address."),
) -> None:
    """Open a developer account (licences need a holder; API keys come with the data API)."""
    try:
        with connect(DatabaseSettings()) as conn:
            developer = add_developer(conn, organisation, contact)
    except (ConnectionsError, RegistryError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"developer {developer.organisation} added ({developer.id})")


@developer_app.command("list")
def developer_list(as_json: bool = typer.Option(False, "--json", help="JSON instead of a table.")) -> None:
    """Every developer account."""
    try:
        with connect(DatabaseSettings()) as conn:
            developers = list_developers(conn)
    except ConnectionsError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps([{"id": str(d.id), "organisation": d.organisation,
                                "contact": d.contact_email, "created_at": d.created_at.isoformat()}
                               for d in developers]))
        return
    table = Table(title="developers", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("organisation", "contact", "id"):
        table.add_column(column, overflow="fold")
    for d in developers:
        table.add_row(d.organisation, d.contact_email, str(d.id))
    console.print(table)

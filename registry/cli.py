"""`motus device register|revoke|list`: provisioning for network operators; `motus developer add|list`
and `motus developer key create|list|revoke`: developer accounts and their API keys; `motus account
password|token`: sign-in accounts of drivers and union operators."""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from broker_config.admin import BrokerAdmin
from broker_config.errors import BrokerConfigError
from connections.database import connect
from connections.errors import ConnectionsError
from connections.settings import LOCAL_STACK_HINT, DatabaseSettings
from protocol.signing import public_key_bytes
from registry.accounts import MIN_PASSWORD_LENGTH, set_password
from registry.developers import add_developer, find_developer, list_developers
from registry.errors import InvalidIdentity, RegistryError
from registry.identity import check_email, check_vin
from registry.keys import (
    ApiKey,
    check_label,
    create_developer_key,
    create_personal_token,
    list_keys,
    revoke_key,
)
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


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _when(at: datetime | None, sep: str = " ") -> str:
    return "-" if at is None else f"{at.astimezone(UTC):%Y-%m-%d}{sep}{at.astimezone(UTC):%H:%M}"


def _show_secret_once(secret: str, what: str) -> None:
    typer.echo(secret)  # plain echo: nothing wraps or styles the line people copy
    typer.echo(f"Copy the {what} now: it will not be shown again (Motus keeps only its SHA-256).")


def _key_json(key: ApiKey) -> dict[str, object]:
    return {"id": key.id, "kind": key.kind, "label": key.label,
            "developer_id": str(key.developer_id) if key.developer_id else None,
            "account": key.account_email, "created_at": key.created_at.isoformat(),
            "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            "active": key.active}


key_app = typer.Typer(help="API keys of a developer account: create, list, revoke.", no_args_is_help=True)
developer_app.add_typer(key_app, name="key")


@key_app.command("create")
def key_create(
    organisation: str = typer.Argument(..., metavar="ORG", help="The developer account's organisation."),
    label: str = typer.Option("", "--label", help="What the key is for (shown in `key list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Make an API key for a developer account; its secret is printed once, never stored."""
    try:
        label = check_label(label)
    except InvalidIdentity as exc:
        raise _fail(str(exc), code=2) from exc
    try:
        with connect(DatabaseSettings()) as conn:
            developer = find_developer(conn, organisation)
            if developer is None:
                raise _fail(f"no developer named {organisation!r}; `motus developer list` shows them")
            key, secret = create_developer_key(conn, developer.id, label, _utc_now())
    except (ConnectionsError, RegistryError) as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps({"id": key.id, "secret": secret, "developer": developer.organisation,
                               "label": key.label}))
        return
    typer.echo(f"API key {key.id} for {developer.organisation}"
               + (f" ({key.label})" if key.label else "") + ":")
    _show_secret_once(secret, "key")


@key_app.command("list")
def key_list(
    organisation: str = typer.Argument(..., metavar="ORG", help="The developer account's organisation."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """The developer account's API keys, oldest first (never their secrets)."""
    try:
        with connect(DatabaseSettings()) as conn:
            developer = find_developer(conn, organisation)
            if developer is None:
                raise _fail(f"no developer named {organisation!r}; `motus developer list` shows them")
            keys = list_keys(conn, developer_id=developer.id)
    except ConnectionsError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps([_key_json(k) for k in keys]))
        return
    # Key ids are copied by people: never wrapped or cut; the label folds if it must.
    table = Table(title=f"{len(keys)} API keys of {escape(developer.organisation)} (times in UTC)",
                  box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("id", no_wrap=True, min_width=16)
    table.add_column("label", overflow="fold")
    table.add_column("created", no_wrap=True)
    table.add_column("last used", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for k in keys:
        # Date over time keeps the columns narrow, so the label has room at 80 columns.
        state = ("[green]active[/green]" if k.active
                 else "[red]revoked\n" + _when(k.revoked_at, "\n") + "[/red]")
        table.add_row(k.id, escape(k.label) or "-", _when(k.created_at, "\n"),
                      "never" if k.last_used_at is None else _when(k.last_used_at, "\n"), state)
    console.print(table)


@key_app.command("revoke")
def key_revoke(
    key_id: str = typer.Argument(..., metavar="KEY_ID", help="The key's id (key_...), not its secret."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Revoke an API key (a developer key or a personal token): the API refuses it from now on."""
    try:
        with connect(DatabaseSettings()) as conn:
            key = revoke_key(conn, key_id.strip(), _utc_now())
    except ConnectionsError as exc:
        raise _fail(str(exc)) from exc
    if key is None:
        raise _fail(f"no API key has the id {key_id!r}; `motus developer key list ORG` shows them")
    if as_json:
        typer.echo(json.dumps(_key_json(key)))
        return
    typer.echo(f"revoked {key.id} ({key.kind} key) at {_when(key.revoked_at)} UTC: "
               "the API refuses it from now on")


account_app = typer.Typer(help="Sign-in accounts of drivers and union operators", no_args_is_help=True)


@account_app.command("password")
def account_password(
    email: str = typer.Argument(..., help="The account's e-mail address (created if new)."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from the first line of stdin."),
) -> None:
    """Set the password an account signs in to the console with (argon2id; at least 12 characters)."""
    try:
        email = check_email(email)
    except InvalidIdentity as exc:
        raise _fail(str(exc), code=2) from exc
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise _fail(f"a password needs at least {MIN_PASSWORD_LENGTH} characters, "
                    f"this one has {len(password)}", code=2)
    try:
        with connect(DatabaseSettings()) as conn:
            set_password(conn, email, password, _utc_now())
    except (ConnectionsError, RegistryError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"password set for {email}")


@account_app.command("token")
def account_token(
    email: str = typer.Argument(..., help="The account's e-mail address (created if new)."),
    label: str = typer.Option("", "--label", help="What the token is for."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Make a personal API token for an account; it is printed once, never stored."""
    try:
        email, label = check_email(email), check_label(label)
    except InvalidIdentity as exc:
        raise _fail(str(exc), code=2) from exc
    try:
        with connect(DatabaseSettings()) as conn:
            key, secret = create_personal_token(conn, email, label, _utc_now())
    except (ConnectionsError, RegistryError) as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps({"id": key.id, "secret": secret, "account": email, "label": key.label}))
        return
    typer.echo(f"personal token {key.id} for {email}" + (f" ({key.label})" if key.label else "") + ":")
    _show_secret_once(secret, "token")

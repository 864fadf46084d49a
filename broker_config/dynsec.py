"""Mosquitto's dynamic security plugin: the initial config file and the control commands.

Pure: builds JSON documents, does no I/O. The document format and command names are those of
Mosquitto 2.0's plugin (https://mosquitto.org/documentation/dynamic-security/); commands are
published to ``$CONTROL/dynamic-security/v1`` by ``broker_config.admin.BrokerAdmin``.

Why one role per device: the plugin of Mosquitto 2.0 has no ``%u``/``%c`` substitution in ACL
topics (tested against 2.0.11), so "publish only under your own id" is a role holding that
device's literal topics.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from protocol.topics import ALL_RECEIPTS, ALL_TELEMETRY, Channel, device_topic

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"

ADMIN_USERNAME = "motus-admin"
INGEST_USERNAME = "motus-ingest"
ADMIN_ROLE = "motus-admin"
INGEST_ROLE = "motus-ingest"

#: The plugin's defaults in Mosquitto 2.0: PBKDF2-HMAC-SHA512, 101 rounds, 12-byte salt.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12

Command = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Credential:
    username: str
    password: str

    @classmethod
    def generate(cls, username: str) -> Credential:
        return cls(username, secrets.token_urlsafe(24))


def hash_password(password: str, salt: bytes, iterations: int = PBKDF2_ITERATIONS) -> bytes:
    """The plugin's password hash: PBKDF2-HMAC-SHA512 over the raw salt, 64 bytes."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _client_entry(credential: Credential, role: str, salt: bytes) -> dict[str, Any]:
    return {
        "username": credential.username,
        "password": _b64(hash_password(credential.password, salt)),
        "salt": _b64(salt),
        "iterations": PBKDF2_ITERATIONS,
        "roles": [{"rolename": role}],
    }


def _acl(acltype: str, topic: str, allow: bool = True) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "allow": allow}


def _admin_acls() -> list[dict[str, Any]]:
    control = f"{CONTROL_TOPIC}/#"
    return [_acl("publishClientSend", control), _acl("publishClientReceive", control),
            _acl("subscribePattern", control), _acl("unsubscribePattern", control)]


def _ingest_acls() -> list[dict[str, Any]]:
    # Mosquitto checks a shared subscription against its whole filter, $share prefix included.
    # Receipts go to each device's own topic once its events committed (protocol.receipts).
    return [_acl("subscribePattern", f"$share/+/{ALL_TELEMETRY}"),
            _acl("unsubscribePattern", f"$share/+/{ALL_TELEMETRY}"),
            _acl("publishClientSend", ALL_RECEIPTS)]


def ingest_acl_commands() -> list[Command]:
    """Bring an existing broker's ingest role up to ``_ingest_acls`` (a broker set up before
    receipts existed); adding an ACL the role already has is refused and tolerated."""
    return [{"command": "addRoleACL", "rolename": INGEST_ROLE, **acl} for acl in _ingest_acls()]


def initial_config(admin: Credential, ingest: Credential) -> dict[str, Any]:
    """The plugin's config file for a new broker: an admin and the ingest identity, nobody
    else; by default nothing may be published or subscribed to."""
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,  # what one may subscribe to, one may receive
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": [
            _client_entry(admin, ADMIN_ROLE, secrets.token_bytes(SALT_BYTES)),
            _client_entry(ingest, INGEST_ROLE, secrets.token_bytes(SALT_BYTES)),
        ],
        "groups": [],
        "roles": [
            {"rolename": ADMIN_ROLE, "acls": _admin_acls()},
            {"rolename": INGEST_ROLE, "acls": _ingest_acls()},
        ],
    }


def device_role(device_id: str) -> str:
    return f"motus-device-{device_id}"


def device_acls(device_id: str) -> list[dict[str, Any]]:
    """Publish telemetry and status under its own id; subscribe to its own receipts and commands
    only."""
    return [
        _acl("publishClientSend", device_topic(device_id, Channel.TELEMETRY)),
        _acl("publishClientSend", device_topic(device_id, Channel.STATUS)),
        _acl("subscribeLiteral", device_topic(device_id, Channel.RECEIPTS)),
        _acl("unsubscribeLiteral", device_topic(device_id, Channel.RECEIPTS)),
        _acl("subscribeLiteral", device_topic(device_id, Channel.COMMANDS)),
        _acl("unsubscribeLiteral", device_topic(device_id, Channel.COMMANDS)),
    ]


def provision_device(device_id: str, password: str) -> list[Command]:
    """Commands that give ``device_id`` exactly its own topics and this password.

    Idempotent: an existing client of that name is deleted first (which disconnects it), so
    registering again replaces the credentials. The client id is bound to the username, so a
    device can neither take another's client id (and kick it off) nor be kicked by one.
    """
    role = device_role(device_id)
    return [
        {"command": "deleteClient", "username": device_id},
        {"command": "deleteRole", "rolename": role},
        {"command": "createRole", "rolename": role, "acls": device_acls(device_id)},
        {"command": "createClient", "username": device_id, "password": password,
         "clientid": device_id, "roles": [{"rolename": role}]},
    ]


def revoke_device(device_id: str) -> list[Command]:
    """Refuse the device from now on and disconnect it if it is connected."""
    return [{"command": "disableClient", "username": device_id}]


#: Errors that mean "already in the wanted state" for the commands above.
TOLERATED_ERRORS = {
    "deleteClient": ("not found",),
    "deleteRole": ("not found",),
    "addRoleACL": ("already exists",),
}

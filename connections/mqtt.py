"""The one MQTT v5 client factory and connect handshake (paho-mqtt), used by the agent, the
simulators, the ingest and the broker admin alike.

``connect`` waits for the CONNACK (MQTT 5 section 3.2) and the SUBACK of each subscription
(section 3.9) so the caller knows at once whether the broker let it in; subscriptions are made
again after every reconnect.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from connections.errors import BrokerRefused, BrokerUnreachable
from connections.mqtt_bulk import BulkClient, Publish
from protocol.endpoint import MqttEndpoint


def make_client(endpoint: MqttEndpoint, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    """A paho MQTT v5 client with the endpoint's transport, credentials and TLS trust; not
    connected."""
    return _configured(mqtt.Client(**_options(endpoint, client_id, manual_ack)), endpoint)


def make_bulk_client(endpoint: MqttEndpoint, client_id: str,
                     on_publishes: Callable[[list[Publish]], None]) -> BulkClient:
    """``make_client`` for a consumer: messages arrive in lists, read in bulk, acknowledged by
    hand (``ack_many``)."""
    client = BulkClient(on_publishes=on_publishes, **_options(endpoint, client_id, manual_ack=True))
    return _configured(client, endpoint)


def _options(endpoint: MqttEndpoint, client_id: str, manual_ack: bool) -> dict[str, Any]:
    return {"callback_api_version": CallbackAPIVersion.VERSION2, "client_id": client_id,
            "protocol": mqtt.MQTTv5, "transport": endpoint.transport, "manual_ack": manual_ack}


_Client = TypeVar("_Client", bound=mqtt.Client)


def _configured(client: _Client, endpoint: MqttEndpoint) -> _Client:
    if endpoint.username is not None:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        # Verify the broker's certificate chain and host name (RFC 6125).
        cafile = str(endpoint.ca_file) if endpoint.ca_file else None
        client.tls_set_context(ssl.create_default_context(cafile=cafile))
    return client


@dataclass(frozen=True, slots=True)
class PersistentSession:
    """CONNECT options of a session the broker keeps while we are away (MQTT 5 section 3.1.2.11):
    what arrived for us meanwhile, and what we received but did not acknowledge, waits for us."""

    expiry_s: int
    #: The most unacknowledged QoS 1 messages the broker may send us at once (3.1.2.11.3).
    receive_maximum: int = 65535

    def properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.expiry_s
        properties.ReceiveMaximum = self.receive_maximum
        return properties


def _failed(reason: Any) -> bool:
    return bool(getattr(reason, "is_failure", False))


def connect(
    client: mqtt.Client,
    endpoint: MqttEndpoint,
    *,
    subscriptions: Sequence[tuple[str, int]] = (),
    session: PersistentSession | None = None,
    timeout_s: float = 10.0,
    keepalive: int = 30,
    on_subscribed: Callable[[], None] | None = None,
) -> None:
    """Connect ``client`` to ``endpoint``, subscribe, and wait until the broker said yes.

    Raises BrokerUnreachable when nothing answers and BrokerRefused when the CONNACK or a SUBACK
    is a refusal (or no answer comes within ``timeout_s``); the client is then stopped. On
    success the client's network loop runs in its own thread. ``on_subscribed`` is called
    each time the broker granted every subscription, after the first connection and after each
    reconnect.
    """
    answered = threading.Event()
    refusals: list[str] = []

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if _failed(reason):
            refusals.append(str(reason))
            answered.set()
        elif subscriptions:
            c.subscribe(list(subscriptions))
        else:
            answered.set()

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: Any, codes: Any, _p: Any) -> None:
        refused = [str(code) for code in codes if _failed(code)]
        if refused:
            refusals.append("subscription refused: " + ", ".join(refused))
        elif on_subscribed is not None:
            on_subscribed()
        answered.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    try:
        client.connect(endpoint.host, endpoint.port, keepalive=keepalive,
                       clean_start=False if session else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                       properties=session.properties() if session else None)
    except (OSError, ValueError) as exc:
        raise BrokerUnreachable(f"cannot reach the broker at {endpoint.describe()}: {exc}") from exc
    client.loop_start()
    if not answered.wait(timeout_s) or refusals:
        client.disconnect()
        client.loop_stop()
        who = f"{endpoint.username!r}" if endpoint.username else "an anonymous client"
        raise BrokerRefused(f"the broker at {endpoint.describe()} refused {who}",
                            refusals[0] if refusals else "no answer")


def disconnect(client: mqtt.Client) -> None:
    """Disconnect cleanly (no Last Will, MQTT 5 section 3.14) and stop the network loop."""
    client.disconnect()
    client.loop_stop()

"""A paho MQTT v5 client set up for an endpoint: credentials, TLS and transport."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol.endpoint import MqttEndpoint


def make_client(endpoint: MqttEndpoint, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        transport=endpoint.transport,
        manual_ack=manual_ack,
    )
    if endpoint.username is not None:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        # Verify the broker's certificate chain and host name (RFC 6125).
        cafile = str(endpoint.ca_file) if endpoint.ca_file else None
        client.tls_set_context(ssl.create_default_context(cafile=cafile))
    return client

"""Runs dynamic-security commands on a live broker (the I/O edge of ``broker_config.dynsec``).

One MQTT connection as the admin identity: commands go to ``$CONTROL/dynamic-security/v1``,
answers come back on its ``/response`` topic, matched by the ``correlationData`` we set.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt

from broker_config import dynsec
from broker_config.errors import BrokerAdminError
from connections.errors import ConnectionsError
from connections.mqtt import connect, disconnect, make_client
from protocol.endpoint import MqttEndpoint


class BrokerAdmin:
    def __init__(self, endpoint: MqttEndpoint, timeout_s: float = 10.0) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._client = make_client(endpoint, f"motus-admin-{secrets.token_hex(4)}")
        self._client.on_message = self._on_message

    def __enter__(self) -> BrokerAdmin:
        try:
            connect(self._client, self.endpoint, subscriptions=[(dynsec.RESPONSE_TOPIC, 1)],
                    timeout_s=self.timeout_s)
        except ConnectionsError as exc:
            raise BrokerAdminError(str(exc)) from exc
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        disconnect(self._client)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(message.payload).get("responses", [])
        except (ValueError, AttributeError):
            return
        with self._lock:
            for response in responses:
                waiter = self._waiting.get(str(response.get("correlationData")))
                if waiter is not None:
                    waiter[1].append(response)
                    waiter[0].set()

    def execute(self, commands: Sequence[dynsec.Command]) -> list[dict[str, Any]]:
        """Run ``commands`` in order; raise on any error not in ``dynsec.TOLERATED_ERRORS``."""
        tag = secrets.token_hex(8)
        tagged = [{**command, "correlationData": f"{tag}-{i}"} for i, command in enumerate(commands)]
        waiters: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {
            c["correlationData"]: (threading.Event(), []) for c in tagged}
        with self._lock:
            self._waiting.update(waiters)
        try:
            info = self._client.publish(dynsec.CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
            info.wait_for_publish(self.timeout_s)
            responses = []
            for command in tagged:
                event, answers = waiters[command["correlationData"]]
                if not event.wait(self.timeout_s):
                    raise BrokerAdminError(f"no answer from the broker to {command['command']}")
                responses.append(answers[0])
        finally:
            with self._lock:
                for key in waiters:
                    self._waiting.pop(key, None)
        for command, response in zip(commands, responses, strict=True):
            error = response.get("error")
            tolerated = dynsec.TOLERATED_ERRORS.get(command["command"], ())
            if error and not any(part in str(error).lower() for part in tolerated):
                raise BrokerAdminError(f"the broker refused {command['command']}: {error}")
        return responses

"""The device's MQTT v5 connection: QoS 1 publishes, TLS and the device's own credentials, a
retained status with a Last Will (MQTT 5 section 3.1.2.5), the network's receipts (subscribed
again on every connection), reconnects with jittered backoff.

Driven from one thread by ``service()``; paho keeps unacknowledged publishes across reconnects
and resends them with the DUP flag (MQTT 5 section 4.4), so a message handed to the link is
never handed again in the same process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from connections.mqtt import make_client
from device_agent.backoff import Backoff
from protocol.endpoint import MqttEndpoint
from protocol.receipts import BootReceipt, ReceiptError, parse_receipt
from protocol.topics import Channel, device_topic

log = logging.getLogger(__name__)


def status_payload(online: bool, **details: Any) -> bytes:
    return json.dumps({"online": online, **details}, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class Ack:
    mid: int
    refused: str | None  # the MQTT 5 reason when the broker refused the message


class BrokerLink:
    def __init__(
        self,
        endpoint: MqttEndpoint,
        device_id: str,
        *,
        backoff: Backoff,
        status: Callable[[], dict[str, Any]] = dict,
        clock: Callable[[], float] = time.monotonic,
        receipts: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.device_id = device_id
        self._backoff = backoff
        self._status = status
        self._clock = clock
        self.status_topic = device_topic(device_id, Channel.STATUS)
        self.receipts_topic = device_topic(device_id, Channel.RECEIPTS)
        #: Whether to ask for receipts; False from the first refused subscription on (a broker
        #: set up before receipts): the pump then forgets events on PUBACK, as before them.
        self.receipts = receipts
        self._receipts: list[BootReceipt] = []
        self._receipts_mid: int | None = None
        self._receipts_granted = False
        self._client = make_client(endpoint, device_id)
        self._client.will_set(self.status_topic, status_payload(False), qos=1, retain=True)
        self._client.max_queued_messages_set(0)
        self._client.max_inflight_messages_set(1000)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._acks: list[Ack] = []
        self._acks_lock = threading.Lock()
        self._socket_open = False
        self.connected = False
        self._next_attempt = 0.0
        self._closing = False

    # paho callbacks (called from service(), in this thread)
    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused the connection: %s", reason)
            return
        self.connected = True
        self._backoff.reset()
        self._receipts_granted = False
        if self.receipts:
            _rc, self._receipts_mid = self._client.subscribe(self.receipts_topic, qos=1)
        self.publish_status()
        log.info("connected to %s", self.endpoint.describe())

    def publish_status(self) -> None:
        """The retained online status with the current details (boot, VIN once read)."""
        if self.connected:
            payload = status_payload(True, **self._status())
            self._client.publish(self.status_topic, payload, qos=1, retain=True)

    @property
    def ready(self) -> bool:
        """Connected, and subscribed to the receipts when asking for them: events published
        before the subscription holds would have their receipts go nowhere."""
        return self.connected and (self._receipts_granted or not self.receipts)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self._closing:
            return
        if self.connected:
            log.warning("disconnected from %s: %s", self.endpoint.describe(), reason)
        self.connected = False
        self._socket_open = False
        self._schedule_retry()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        refused = str(reason) if getattr(reason, "is_failure", False) else None
        with self._acks_lock:
            self._acks.append(Ack(mid, refused))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        if mid != self._receipts_mid:
            return
        self._receipts_granted = True
        if any(getattr(c, "is_failure", False) for c in codes):
            self.receipts = False
            log.warning("the broker refused the receipts subscription (%s): events now leave the "
                        "spool when the broker acknowledges them", ", ".join(map(str, codes)))

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic != self.receipts_topic:
            return
        try:
            boots = parse_receipt(bytes(message.payload))
        except ReceiptError as exc:
            log.warning("ignored a receipt: %s", exc)
            return
        with self._acks_lock:
            self._receipts.extend(boots)

    def _schedule_retry(self) -> None:
        delay = self._backoff.next_delay()
        self._next_attempt = self._clock() + delay
        log.info("next connection attempt in %.1f s", delay)

    def service(self, timeout_s: float) -> None:
        """Connect when due, then move bytes for up to ``timeout_s``."""
        if not self._socket_open:
            if self._clock() < self._next_attempt:
                time.sleep(min(timeout_s, max(0.0, self._next_attempt - self._clock())))
                return
            try:
                self._client.connect(self.endpoint.host, self.endpoint.port, keepalive=30)
                self._socket_open = True
            except (OSError, ValueError) as exc:
                log.warning("cannot reach %s: %s", self.endpoint.describe(), exc)
                self._schedule_retry()
                return
        rc = self._client.loop(timeout=timeout_s)
        if rc != mqtt.MQTT_ERR_SUCCESS and self._socket_open:
            # loop() reports a lost connection without always calling on_disconnect.
            self.connected = False
            self._socket_open = False
            log.warning("lost %s: %s", self.endpoint.describe(), mqtt.error_string(rc))
            self._schedule_retry()

    def publish(self, topic: str, payload: bytes) -> int:
        """Hand one QoS 1 message to the link; returns its packet id for ``take_acks``."""
        info = self._client.publish(topic, payload, qos=1)
        return info.mid

    def take_acks(self) -> list[Ack]:
        with self._acks_lock:
            acks, self._acks = self._acks, []
        return acks

    def take_receipts(self) -> list[BootReceipt]:
        with self._acks_lock:
            receipts, self._receipts = self._receipts, []
        return receipts

    def close(self, timeout_s: float = 2.0) -> None:
        """Say offline (a clean disconnect suppresses the Will), then disconnect."""
        self._closing = True
        if self.connected:
            info = self._client.publish(self.status_topic, status_payload(False), qos=1, retain=True)
            deadline = time.monotonic() + timeout_s
            while not info.is_published() and time.monotonic() < deadline and self.connected:
                self._client.loop(timeout=0.05)
            self._client.disconnect()
            self._client.loop(timeout=0.05)
        self.connected = False

"""How a client reaches the broker: address, transport, TLS trust and credentials.

Pure data, shared by the agent config written at provisioning and by every service's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MqttEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    #: "websockets" is MQTT over WebSocket (the broker's listener for phone apps).
    transport: Literal["tcp", "websockets"] = "tcp"
    tls: bool = False
    #: With TLS, verify the broker against this CA (PEM) alone; None: the system's trust store.
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = Field(default=None, repr=False)

    def describe(self) -> str:
        scheme = {("tcp", False): "mqtt", ("tcp", True): "mqtts",
                  ("websockets", False): "ws", ("websockets", True): "wss"}
        return f"{scheme[(self.transport, self.tls)]}://{self.host}:{self.port}"

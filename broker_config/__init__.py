"""Mosquitto configuration: the one template production and the local stack both render."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from string import Template

TEMPLATE = "mosquitto.conf.tmpl"


@dataclass(frozen=True, slots=True)
class BrokerLayout:
    """Where the broker listens and keeps its files. Defaults are a production host's."""

    dynsec_plugin: Path = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
    dynsec_file: Path = Path("/var/lib/mosquitto/dynamic-security.json")
    data_dir: Path = Path("/var/lib/mosquitto")
    log_file: Path = Path("/var/log/mosquitto/mosquitto.log")
    cert_file: Path = Path("/etc/mosquitto/certs/server.crt")
    key_file: Path = Path("/etc/mosquitto/certs/server.key")
    service_bind: str = "127.0.0.1"
    service_port: int = 1883
    tls_bind: str = "0.0.0.0"
    tls_port: int = 8883
    ws_bind: str = "0.0.0.0"
    ws_port: int = 8884


def render_mosquitto_conf(layout: BrokerLayout) -> str:
    text = resources.files("broker_config").joinpath(TEMPLATE).read_text("utf-8")
    return Template(text).substitute({k: str(v) for k, v in asdict(layout).items()})

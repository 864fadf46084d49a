"""Mosquitto configuration templates, rendered by the local stack and by deploy/."""

from __future__ import annotations

from importlib import resources
from string import Template


def render(template_name: str, **values: object) -> str:
    """Render ``template_name`` (a file in this package) with ``$name`` placeholders."""
    text = resources.files("broker_config").joinpath(template_name).read_text("utf-8")
    return Template(text).substitute({k: str(v) for k, v in values.items()})

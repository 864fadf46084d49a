"""API settings (MOTUS_ environment variables)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOTUS_")

    database_url: str = "postgresql://motus@127.0.0.1:5432/motus"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_pool_max: int = 10
    #: How long a request waits for a database connection before answering 503.
    api_db_timeout_s: float = 5.0

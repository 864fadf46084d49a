"""API settings (MOTUS_ environment variables)."""

from __future__ import annotations

from pydantic import Field

from rewards.settings import RewardsSettings


class ApiSettings(RewardsSettings):
    """The database, the network's key and fees (operators grant licences through the API)."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_pool_max: int = Field(default=10, ge=1)
    #: How long a request waits for a database connection before answering 503.
    api_db_timeout_s: float = Field(default=5.0, gt=0)

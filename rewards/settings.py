"""Settings of the money side (`motus union|licence|epoch|ledger|rewards ...`): MOTUS_ variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from connections.settings import DatabaseSettings
from rewards.epoch import NetworkTerms
from rewards.ledger import TOKEN_EXPONENT
from rewards.weeks import Week


def _config_home() -> Path:
    configured = os.environ.get("XDG_CONFIG_HOME")
    return Path(configured) if configured else Path.home() / ".config"


class RewardsSettings(DatabaseSettings):
    #: The network's cut of licence revenue, in basis points (every union's bylaws must leave
    #: their members at least 70% after it and the operator fee).
    network_fee_bps: int = Field(default=500, ge=0, le=3000)
    #: Reward tokens issued each week of the first year (DIMO: 1,105,000), shrinking every 52
    #: weeks by ``pool_decay_bps`` (DIMO: 15%).
    weekly_pool_tokens: int = Field(default=1_105_000, ge=0)
    pool_decay_bps: int = Field(default=1500, ge=0, le=10_000)
    #: The first week of issuance (ISO week).
    genesis_week: str = "2026-W01"
    #: Closing an epoch settles late data of the closed epochs this many weeks back.
    adjust_weeks: int = Field(default=4, ge=0, le=52)
    #: The network's Ed25519 key (PEM, 0600), which signs licence receipts and payout roots;
    #: created on first use.
    network_key_file: Path = Field(default_factory=lambda: _config_home() / "motus" / "network.key")

    def terms(self) -> NetworkTerms:
        return NetworkTerms(network_fee_bps=self.network_fee_bps,
                            weekly_pool=self.weekly_pool_tokens * 10**TOKEN_EXPONENT,
                            pool_decay_bps=self.pool_decay_bps,
                            genesis=Week.parse(self.genesis_week))

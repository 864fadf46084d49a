"""The errors of the money side; every one derives from RewardsError."""

from __future__ import annotations


class RewardsError(Exception):
    """Base of every error the rewards package raises."""


class InvalidBylaws(RewardsError):
    """Bylaws that break one or more rules; ``problems`` names each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("the bylaws break these rules:\n" + "\n".join(f"- {p}" for p in problems))


class MembershipError(RewardsError):
    """A join, leave, pause or strike that the membership rules refuse."""


class LicenceError(RewardsError):
    """A licence the bylaws, the knob or the developer's balance refuse."""


class EpochError(RewardsError):
    """An epoch that cannot be closed (not over yet) or named (not an ISO week)."""


class MissingNetworkKey(RewardsError):
    """The network's signing key is not where the settings say."""


class UnknownRecord(RewardsError):
    """A union, driver, developer, licence or epoch that does not exist."""

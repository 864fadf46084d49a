"""The error base of ``broker_config``."""

from __future__ import annotations


class BrokerConfigError(Exception):
    """Base of the errors of ``broker_config``."""


class BrokerAdminError(BrokerConfigError):
    """The broker could not be reached, refused the admin, or refused a command."""

"""The error base of the registry. These blame the request, not the network."""

from __future__ import annotations


class RegistryError(Exception):
    """Base of the registry's errors: a change its rules refuse."""


class InvalidIdentity(RegistryError):
    """An e-mail address or a VIN that cannot be what it claims to be."""


class ProvisioningError(RegistryError):
    """A registration or revocation that could not be carried out; the message says why."""

"""Ed25519 signatures over a canonical form that covers the topic and the whole event.

Signing input (docs/protocol.md, "Signing")::

    b"motus-telemetry-sig-v1\\n" + topic (UTF-8) + b"\\n" + JCS(event without "signature")

JCS is the JSON Canonicalization Scheme, RFC 8785. The signature is the 64-byte Ed25519
signature (RFC 8032), base64-encoded (RFC 4648 section 4, with padding) into ``signature``.
Because the topic, ``id`` (boot id and sequence), ``time`` and ``data`` are all inside the
signed bytes, moving an event to another topic or changing any of them breaks the signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import nacl.bindings
import nacl.exceptions
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import jcs
from protocol.envelope import TelemetryEvent
from protocol.errors import Reason, SignatureError

SIGNING_DOMAIN = b"motus-telemetry-sig-v1\n"
SIGNATURE_MEMBER = "signature"


def canonical_json(document: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of ``document`` without its signature member."""
    unsigned = {k: v for k, v in document.items() if k != SIGNATURE_MEMBER}
    try:
        return jcs.dumps(unsigned, plain=isinstance(document, jcs.PlainObject))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise SignatureError(f"event cannot be canonicalized: {exc}") from exc


def wire_bytes(document: dict[str, Any]) -> bytes:
    """Wire bytes of a signed event: RFC 8785 JSON of the whole object, compact and deterministic."""
    return jcs.dumps(document)


def signing_input(topic: str, document: dict[str, Any]) -> bytes:
    return _signed_bytes(topic, canonical_json(document))


def _signed_bytes(topic: str, canonical: bytes) -> bytes:
    return SIGNING_DOMAIN + topic.encode("utf-8") + b"\n" + canonical


def sign_document(document: dict[str, Any], topic: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``document`` with its ``signature`` member set."""
    signature = key.sign(signing_input(topic, document))
    return {**document, SIGNATURE_MEMBER: base64.b64encode(signature).decode("ascii")}


def sign_event(event: TelemetryEvent, topic: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed wire object for ``event`` published on ``topic``."""
    return sign_document(event.to_wire(), topic, key)


def verify_document(document: dict[str, Any], topic: str, public_key: bytes) -> None:
    """Raise SignatureError unless ``document`` carries a valid signature for ``topic``."""
    encoded = document.get(SIGNATURE_MEMBER)
    if encoded is None:
        raise SignatureError("event has no signature", Reason.MISSING_SIGNATURE)
    if not isinstance(encoded, str):
        raise SignatureError("signature must be a base64 string")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise SignatureError(f"signature is not valid base64: {exc}") from exc
    if len(signature) != 64:
        raise SignatureError(f"signature must be 64 bytes, got {len(signature)}")
    if len(public_key) != 32:
        raise SignatureError(f"registered public key is unusable: {len(public_key)} bytes, not 32")
    if not signature_matches(signature, topic, canonical_json(document), public_key):
        raise SignatureError(
            "signature does not match the topic and event (changed bytes, moved topic or wrong key)")


def signature_matches(signature: bytes, topic: str, canonical: bytes, public_key: bytes) -> bool:
    """Whether ``signature`` (64 bytes) signs ``canonical`` (the event's RFC 8785 form without
    its signature) published on ``topic``, under ``public_key`` (32 bytes)."""
    # libsodium's verification (RFC 8032 section 5.1.7, and it refuses small-order keys); about
    # 2.5 times faster here than OpenSSL's, which matters at ingest line rate.
    try:
        nacl.bindings.crypto_sign_open(signature + _signed_bytes(topic, canonical), public_key)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def private_key_from_pem(pem: bytes) -> Ed25519PrivateKey:
    """A device key as provisioning writes it (PKCS#8 PEM, unencrypted); ValueError otherwise."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"expected an Ed25519 private key, got {type(key).__name__}")
    return key


def private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def device_id_for(public_key: bytes) -> str:
    """A device id derived from its public key: 'm' + 24 base32 characters of SHA-256."""
    digest = hashlib.sha256(public_key).digest()
    return "m" + base64.b32encode(digest).decode("ascii").lower()[:24]

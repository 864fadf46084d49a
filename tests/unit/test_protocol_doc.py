"""docs/protocol.md must stay true: its worked example verifies with our code, byte for byte."""

import base64
import hashlib
import json
import re
from pathlib import Path

from ingest.pipeline import DeviceReason, StoreReason
from protocol import limits
from protocol.errors import Reason
from protocol.signing import canonical_json, signing_input, verify_document

DOC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()


def block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)\n```", DOC, re.S)
    assert match, marker
    return match.group(1)


def test_worked_example_verifies_and_matches_every_stated_byte():
    topic = block("example:topic")
    public_key = base64.b64decode(block("example:public-key"))
    message = json.loads(block("example:message"))
    canonical = block("example:canonical").encode()
    verify_document(message, topic, public_key)
    assert canonical_json(message) == canonical
    assert message["signature"] == block("example:signature")
    data = signing_input(topic, message)
    assert hashlib.sha256(data).hexdigest() == block("example:signing-input-sha256")
    assert f"one line, {len(canonical)} bytes" in DOC
    assert f"that line: {len(data)} bytes" in DOC


def test_example_public_key_is_rfc8032_test_vector_1():
    public_key = base64.b64decode(block("example:public-key"))
    assert public_key.hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"


def test_every_rejection_reason_is_documented():
    section = DOC.split("## Rejections", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, re.M))
    reasons = {r.value for enum in (Reason, DeviceReason, StoreReason) for r in enum}
    assert reasons == documented


def test_documented_limits_are_the_enforced_ones():
    assert f"| message size | {limits.MAX_EVENT_BYTES} bytes" in DOC
    assert f"| readings per event | {limits.MAX_SIGNALS_PER_EVENT} |" in DOC
    assert f"| string value | {limits.MAX_STRING_VALUE_CHARS} characters |" in DOC
    assert f"| boot id | {limits.MAX_BOOT_ID_CHARS} characters |" in DOC
    assert f"at most {limits.MAX_FUTURE_SKEW.seconds // 60} minutes in the future" in DOC
    assert f"at most {limits.MAX_READING_AGE.days} days in the past" in DOC

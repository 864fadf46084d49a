"""A data union's bylaws: a validated, versioned document, TOML in, canonical JSON out.

The bylaws say what the union may license (purposes, privilege classes, a floor price), how the
money splits (members, operator; the network fee is a network setting, not part of the document),
who may join, how the members' share is divided and who may call a strike.

Checking names every broken rule at once: pydantic checks each field (``InvalidBylaws.problems``
gets one readable line per error), and the rules that span fields run on whatever parsed.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from protocol.catalog import Privilege
from protocol.jcs import dumps
from rewards.errors import InvalidBylaws

BYLAWS_FORMAT = "motus-bylaws-v1"
MIN_MEMBER_SHARE_BPS = 7000
MAX_OPERATOR_FEE_BPS = 2500
ALL_BPS = 10_000  # 100%

_RULE = "bylaws_rule"  # a field rule below; its message reads after "<field> is <value>: "
_CROSS = "bylaws_cross_field"  # the rules spanning fields; check_bylaws recomputes them
_SHOWN_CHARS = 60  # a value longer than this is cut in a problem line


class Purpose(StrEnum):
    """What a developer may use licensed data for."""

    INSURANCE = "insurance"
    RESEARCH = "research"
    MAINTENANCE = "maintenance"
    FLEET = "fleet"
    MAPPING = "mapping"
    MARKETING = "marketing"
    SAFETY = "safety"


class Admission(StrEnum):
    """How drivers join: anyone, or on the operator's approval."""

    OPEN = "open"
    APPROVAL = "approval"


class MemberSplit(StrEnum):
    """How the members' share of a licence is divided among the members."""

    VEHICLE_DAYS = "vehicle-days"  # equally per covered vehicle-day
    ROWS_SERVED = "rows-served"  # pro rata to readings actually served (the access log)


class StrikeCall(StrEnum):
    """Who may call a strike (a pause of all licensing)."""

    OPERATOR = "operator"
    MEMBER_VOTE = "member-vote"  # members holding at least quorum_bps of the member vehicles


# --- field rules: each raises one readable error, pydantic collects them across fields ---------


def _rule(message: str) -> PydanticCustomError:
    return PydanticCustomError(_RULE, message)  # no context: the message is used as it is


def _text(limit: int) -> AfterValidator:
    """Stripped, not blank, at most ``limit`` characters."""

    def check(value: str) -> str:
        value = value.strip()
        if not value:
            raise _rule("it cannot be blank")
        if len(value) > limit:
            raise _rule(f"it must be at most {limit} characters (it has {len(value)})")
        return value

    return AfterValidator(check)


def _member_share(value: int) -> int:
    if value < MIN_MEMBER_SHARE_BPS:
        raise _rule(f"the members' share must be at least {MIN_MEMBER_SHARE_BPS} (70%)")
    if value > ALL_BPS:
        raise _rule(f"the members' share cannot exceed {ALL_BPS} (100%)")
    return value


def _operator_fee(value: int) -> int:
    if value < 0:
        raise _rule("the operator's fee cannot be negative")
    if value > MAX_OPERATOR_FEE_BPS:
        raise _rule(f"the operator's fee must be at most {MAX_OPERATOR_FEE_BPS} (25%)")
    return value


def _min_price(value: int) -> int:
    if value < 0:
        raise _rule("the minimum price cannot be negative (0 or more minor units per vehicle-month)")
    return value


E = TypeVar("E", bound=StrEnum)


def _set_of(what: str, *, may_be_empty: bool) -> AfterValidator:
    """No duplicates (and not empty unless ``may_be_empty``); stored sorted, so equal sets compare equal."""

    def check(values: tuple[E, ...]) -> tuple[E, ...]:
        if not values and not may_be_empty:
            raise _rule(f"the bylaws must name at least one {what}")
        twice = sorted({v.value for v in values if values.count(v) > 1})
        if twice:
            raise _rule(f"it lists {', '.join(twice)} more than once")
        return tuple(sorted(values))

    return AfterValidator(check)


class StrikeRules(BaseModel):
    """Who calls a strike; a member vote needs a quorum in bps of the member vehicles."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    called_by: StrikeCall
    quorum_bps: StrictInt | None = Field(default=None, validate_default=True)

    @field_validator("quorum_bps")
    @classmethod
    def _quorum(cls, value: int | None, info: ValidationInfo) -> int | None:
        called_by = info.data.get("called_by")  # absent when called_by itself is broken
        if called_by is StrikeCall.OPERATOR and value is not None:
            raise _rule("an operator-called strike takes no quorum (leave quorum_bps out)")
        if called_by is StrikeCall.MEMBER_VOTE and value is None:
            raise _rule(f"a member-vote strike needs quorum_bps, from 1 to {ALL_BPS}")
        if value is not None and not 1 <= value <= ALL_BPS:
            raise _rule(f"the quorum must be from 1 to {ALL_BPS} bps of the member vehicles")
        return value


class Bylaws(BaseModel):
    """A union's bylaws. Build them with ``check_bylaws`` (or a parser): it names every problem
    and applies the network fee; constructing directly checks the sum with a network fee of 0."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[StrictStr, _text(80)]
    purpose: Annotated[StrictStr, _text(500)]  # the union's own statement of purpose
    member_share_bps: Annotated[StrictInt, AfterValidator(_member_share)]
    operator_fee_bps: Annotated[StrictInt, AfterValidator(_operator_fee)]
    privileges: Annotated[tuple[Privilege, ...], _set_of("privilege class", may_be_empty=False)]
    allowed_purposes: Annotated[tuple[Purpose, ...], _set_of("allowed purpose", may_be_empty=False)]
    forbidden_purposes: Annotated[tuple[Purpose, ...], _set_of("forbidden purpose", may_be_empty=True)]
    min_price_minor: Annotated[StrictInt, AfterValidator(_min_price)]  # per covered vehicle-month
    admission: Admission
    member_split: MemberSplit
    strike: StrikeRules

    @model_validator(mode="after")
    def _cross_field(self, info: ValidationInfo) -> Self:
        context = info.context if isinstance(info.context, Mapping) else {}
        problems = _cross_field_problems(
            self.member_share_bps, self.operator_fee_bps, set(self.allowed_purposes),
            set(self.forbidden_purposes), network_fee_bps=context.get("network_fee_bps", 0))
        if problems:
            raise PydanticCustomError(_CROSS, "; ".join(problems))
        return self


# --- rules that span fields -------------------------------------------------------------------


def _cross_field_problems(member_share: int | None, operator_fee: int | None, allowed: set[Purpose],
                          forbidden: set[Purpose], *, network_fee_bps: int) -> list[str]:
    """The rules over several fields; a value that did not parse is None (or left out of a set)."""
    problems = []
    if member_share is not None and operator_fee is not None:
        total = member_share + operator_fee + network_fee_bps
        if total > ALL_BPS:
            problems.append(
                f"member_share_bps + operator_fee_bps + the network fee is {member_share} + {operator_fee}"
                f" + {network_fee_bps} = {total}: together they must be at most {ALL_BPS} (100%)")
    both = sorted(p.value for p in allowed & forbidden)
    if both:
        problems.append(f"allowed_purposes and forbidden_purposes both list {', '.join(both)}:"
                        " a purpose cannot be both allowed and forbidden")
    return problems


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _purposes_in(value: object) -> set[Purpose]:
    """The items of a list that are purposes; the broken ones are reported by pydantic."""
    if not isinstance(value, list | tuple):
        return set()
    return {Purpose(item) for item in value if isinstance(item, str) and item in Purpose._value2member_map_}


def _raw_cross_field_problems(document: Mapping[str, object], network_fee_bps: int) -> list[str]:
    return _cross_field_problems(
        _int_or_none(document.get("member_share_bps")), _int_or_none(document.get("operator_fee_bps")),
        _purposes_in(document.get("allowed_purposes")), _purposes_in(document.get("forbidden_purposes")),
        network_fee_bps=network_fee_bps)


# --- pydantic errors as readable lines ----------------------------------------------------------


#: pydantic's words for its type errors, in a bylaws author's words (TOML arrays and tables).
_WORDING = {
    "Input should": "it should",
    "a valid tuple": "a list",
    "a valid dictionary or instance of StrikeRules": "a table",
}


def _where(loc: tuple[int | str, ...]) -> str:
    """``strike.quorum_bps``, ``allowed_purposes[1]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "the document"


def _show(value: Any) -> str:
    if value is None:
        return "missing"
    shown = json.dumps(value, ensure_ascii=False, default=str)
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 1] + "…"


def _line(error: ErrorDetails) -> str:
    where = _where(error["loc"])
    if error["type"] == "missing":
        return f"{where} is missing: the bylaws require it"
    if error["type"] == "extra_forbidden":
        return f"{where} is an unknown key: the bylaws have no such field"
    message = error["msg"]
    for theirs, ours in _WORDING.items():
        message = message.replace(theirs, ours)
    return f"{where} is {_show(error['input'])}: {message}"


# --- the public functions -----------------------------------------------------------------------


def _network_fee(network_fee_bps: int) -> int:
    if not 0 <= network_fee_bps <= ALL_BPS:
        raise ValueError(f"the network fee must be from 0 to {ALL_BPS} bps, not {network_fee_bps}")
    return network_fee_bps


def _checked(document: Mapping[str, object], network_fee_bps: int) -> tuple[Bylaws | None, list[str]]:
    """The bylaws, or None and every problem."""
    try:
        bylaws = Bylaws.model_validate(dict(document), context={"network_fee_bps": network_fee_bps})
    except ValidationError as error:
        field_problems = [_line(e) for e in error.errors(include_url=False) if e["type"] != _CROSS]
        return None, field_problems + _raw_cross_field_problems(document, network_fee_bps)
    return bylaws, []


def check_bylaws(document: Mapping[str, object], *, network_fee_bps: int) -> Bylaws:
    """The bylaws in ``document`` (parsed TOML or JSON); raise InvalidBylaws naming every problem."""
    bylaws, problems = _checked(document, _network_fee(network_fee_bps))
    if bylaws is None:
        raise InvalidBylaws(problems)
    return bylaws


def parse_bylaws(text: str, *, network_fee_bps: int) -> Bylaws:
    """Bylaws from TOML text (layout: docs/examples/bylaws.toml)."""
    _network_fee(network_fee_bps)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidBylaws([f"the bylaws are not valid TOML: {error}"]) from error
    return check_bylaws(document, network_fee_bps=network_fee_bps)


def bylaws_document(b: Bylaws) -> dict[str, object]:
    """The JSON-ready document: the TOML's keys plus ``format``; enums as strings, no absent quorum."""
    return {"format": BYLAWS_FORMAT, **b.model_dump(mode="json", exclude_none=True)}


def bylaws_json(b: Bylaws) -> bytes:
    """RFC 8785 canonical JSON: equal bylaws give equal bytes."""
    return dumps(bylaws_document(b))


def bylaws_hash(b: Bylaws) -> str:
    """Hex SHA-256 of ``bylaws_json``: names one version of a union's bylaws."""
    return hashlib.sha256(bylaws_json(b)).hexdigest()


def bylaws_from_json(data: bytes | str, *, network_fee_bps: int) -> Bylaws:
    """Bylaws back from ``bylaws_json`` (or any JSON of that shape), checked as from TOML."""
    _network_fee(network_fee_bps)
    try:
        document = json.loads(data)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidBylaws([f"the bylaws are not valid JSON: {error}"]) from error
    if not isinstance(document, dict):
        raise InvalidBylaws([f"the bylaws JSON must be an object, not {type(document).__name__}"])
    problems = _format_problems(document.pop("format", None))
    bylaws, more = _checked(document, network_fee_bps)
    if problems or bylaws is None:
        raise InvalidBylaws(problems + more)
    return bylaws


def _format_problems(found: object) -> list[str]:
    if found == BYLAWS_FORMAT:
        return []
    return [f"format is {_show(found)}: the bylaws JSON must say \"format\": \"{BYLAWS_FORMAT}\""]


def licensable(b: Bylaws, purpose: Purpose, privileges: set[Privilege], price_minor: int) -> list[str]:
    """Why a licence on these terms is NOT allowed under the bylaws; empty when it is."""
    reasons = []
    if purpose in b.forbidden_purposes:
        reasons.append(f"the bylaws forbid the purpose {purpose.value}")
    elif purpose not in b.allowed_purposes:
        allowed = ", ".join(p.value for p in b.allowed_purposes)
        reasons.append(f"the purpose {purpose.value} is not among those the bylaws allow ({allowed})")
    if not privileges:
        reasons.append("a licence must grant at least one privilege class")
    licensed = ", ".join(p.value for p in b.privileges)
    for privilege in sorted(privileges - set(b.privileges)):
        reasons.append(f"the union does not license {privilege.value} data (it licenses {licensed})")
    if price_minor < b.min_price_minor:
        reasons.append(f"the price {price_minor} is below the bylaws' minimum of {b.min_price_minor}"
                       " (minor units per covered vehicle per month)")
    return reasons

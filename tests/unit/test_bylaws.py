"""A union's bylaws: every broken rule named at once, TOML in, canonical JSON out."""

import copy
import hashlib
import json
import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from protocol.catalog import Privilege
from rewards.bylaws import (
    BYLAWS_FORMAT,
    MAX_OPERATOR_FEE_BPS,
    MIN_MEMBER_SHARE_BPS,
    Admission,
    Bylaws,
    MemberSplit,
    Purpose,
    StrikeCall,
    bylaws_document,
    bylaws_from_json,
    bylaws_hash,
    bylaws_json,
    check_bylaws,
    licensable,
    parse_bylaws,
)
from rewards.errors import InvalidBylaws

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "bylaws.toml"
NETWORK_FEE = 500

#: Valid bylaws that leave room for every single-rule break below.
VALID = {
    "name": "Test Union",
    "purpose": "Pool non-location data for research.",
    "member_share_bps": 8000,
    "operator_fee_bps": 1000,
    "privileges": ["non-location", "location"],
    "allowed_purposes": ["research", "safety"],
    "forbidden_purposes": ["marketing"],
    "min_price_minor": 100,
    "admission": "open",
    "member_split": "rows-served",
    "strike": {"called_by": "operator"},
}


def problems_of(document, network_fee_bps=NETWORK_FEE):
    with pytest.raises(InvalidBylaws) as caught:
        check_bylaws(document, network_fee_bps=network_fee_bps)
    return caught.value.problems


def changed(**fields):
    document = copy.deepcopy(VALID)
    for key, value in fields.items():
        if value is None:
            del document[key]
        else:
            document[key] = value
    return document


def test_the_example_file_parses():
    bylaws = parse_bylaws(EXAMPLE.read_text("utf-8"), network_fee_bps=NETWORK_FEE)
    assert bylaws.name == "Lakeside Commuters"
    assert bylaws.privileges == (Privilege.NON_LOCATION,)
    assert Purpose.MARKETING in bylaws.forbidden_purposes
    assert bylaws.strike.called_by is StrikeCall.MEMBER_VOTE and bylaws.strike.quorum_bps == 3334
    assert bylaws.admission is Admission.APPROVAL and bylaws.member_split is MemberSplit.VEHICLE_DAYS


def test_valid_bylaws_are_stored_trimmed_and_sorted():
    bylaws = check_bylaws(changed(name="  Test Union  "), network_fee_bps=NETWORK_FEE)
    assert bylaws.name == "Test Union"
    assert bylaws.privileges == (Privilege.LOCATION, Privilege.NON_LOCATION)
    assert bylaws.allowed_purposes == (Purpose.RESEARCH, Purpose.SAFETY)
    assert bylaws.strike.quorum_bps is None


BROKEN = [
    pytest.param(changed(member_share_bps=6500),
                 "member_share_bps is 6500: the members' share must be at least 7000 (70%)", id="low-share"),
    # Over 2500 with a member share of 7000 or more leaves no room for a network fee: 0 here.
    pytest.param(changed(member_share_bps=7000, operator_fee_bps=2600, network_fee_bps=0),
                 "operator_fee_bps is 2600: the operator's fee must be at most 2500", id="high-operator-fee"),
    pytest.param(changed(member_share_bps=8000, operator_fee_bps=2000),
                 "8000 + 2000 + 500 = 10500: together they must be at most 10000", id="sum-over-10000"),
    pytest.param(changed(forbidden_purposes=["safety", "marketing"]),
                 "allowed_purposes and forbidden_purposes both list safety", id="overlap"),
    pytest.param(changed(colour="red"), "colour is an unknown key", id="unknown-key"),
    pytest.param(changed(strike={"called_by": "operator", "veto": True}), "strike.veto is an unknown key",
                 id="unknown-nested-key"),
    pytest.param(changed(admission=None), "admission is missing", id="missing-field"),
    pytest.param(changed(member_split="by-mileage"), 'member_split is "by-mileage"', id="bad-enum"),
    pytest.param(changed(member_share_bps="8000"), 'member_share_bps is "8000": it should be a valid integer',
                 id="wrong-type"),
    pytest.param(changed(privileges=[]), "privileges is []: the bylaws must name at least one",
                 id="no-privileges"),
    pytest.param(changed(allowed_purposes=["research", "safety", "research"]),
                 "allowed_purposes is", id="duplicate-purpose"),
    pytest.param(changed(min_price_minor=-1), "min_price_minor is -1", id="negative-min-price"),
    pytest.param(changed(name="   "), "name is", id="blank-name"),
    pytest.param(changed(strike={"called_by": "member-vote"}),
                 "strike.quorum_bps is missing: a member-vote strike needs quorum_bps",
                 id="vote-without-quorum"),
    pytest.param(changed(strike={"called_by": "member-vote", "quorum_bps": 0}), "strike.quorum_bps is 0",
                 id="vote-with-zero-quorum"),
    pytest.param(changed(strike={"called_by": "operator", "quorum_bps": 5000}),
                 "strike.quorum_bps is 5000: an operator-called strike takes no quorum",
                 id="operator-with-quorum"),
]


@pytest.mark.parametrize(("document", "reason"), BROKEN)
def test_each_broken_rule_alone_is_refused_with_its_reason(document, reason):
    document = dict(document)
    network_fee_bps = document.pop("network_fee_bps", NETWORK_FEE)  # a setting, not a bylaws key
    problems = problems_of(document, network_fee_bps)
    assert len(problems) == 1, problems
    assert reason in problems[0]
    assert "pydantic" not in problems[0] and "http" not in problems[0]


def test_a_duplicate_names_the_repeated_purpose():
    [problem] = problems_of(changed(allowed_purposes=["research", "safety", "research"]))
    assert "lists research more than once" in problem


def test_a_toml_syntax_error_is_one_problem_with_its_place():
    with pytest.raises(InvalidBylaws) as caught:
        parse_bylaws('name = "Test Union"\nmember_share_bps = = 8000\n', network_fee_bps=NETWORK_FEE)
    [problem] = caught.value.problems
    assert "not valid TOML" in problem and "line 2" in problem


def test_a_document_breaking_many_rules_reports_every_one():
    document = changed(member_share_bps=6500, operator_fee_bps=3000, privileges=[], min_price_minor=-5,
                       forbidden_purposes=["research"], admission=None, colour="red",
                       strike={"called_by": "member-vote"})
    problems = problems_of(document)
    for part in ["member_share_bps is 6500", "operator_fee_bps is 3000", "privileges is []",
                 "min_price_minor is -5", "both list research", "admission is missing",
                 "colour is an unknown key", "strike.quorum_bps is missing"]:
        assert sum(part in p for p in problems) == 1, (part, problems)
    assert len(problems) == 8
    assert all(line in str(InvalidBylaws(problems)) for line in problems)


def test_cross_field_rules_run_even_when_other_fields_break():
    problems = problems_of(changed(member_share_bps=9000, operator_fee_bps=1000, name=7))
    assert any(p.startswith("name is 7") for p in problems)
    assert any("9000 + 1000 + 500 = 10500" in p for p in problems)


def test_the_network_fee_is_a_setting_not_part_of_the_document():
    document = changed(member_share_bps=8000, operator_fee_bps=2000)
    assert check_bylaws(document, network_fee_bps=0).member_share_bps == 8000
    assert problems_of(document, network_fee_bps=1)
    assert problems_of(changed(network_fee_bps=0))  # an unknown key
    with pytest.raises(ValueError):
        check_bylaws(VALID, network_fee_bps=-1)


def test_json_round_trip_is_equal():
    bylaws = parse_bylaws(EXAMPLE.read_text("utf-8"), network_fee_bps=NETWORK_FEE)
    data = bylaws_json(bylaws)
    assert bylaws_from_json(data, network_fee_bps=NETWORK_FEE) == bylaws
    assert bylaws_from_json(data.decode(), network_fee_bps=NETWORK_FEE) == bylaws
    document = json.loads(data)
    assert document == bylaws_document(bylaws)
    assert document["format"] == BYLAWS_FORMAT and document["strike"]["called_by"] == "member-vote"
    assert set(document) - {"format"} == set(tomllib.loads(EXAMPLE.read_text("utf-8")))


def test_an_operator_strike_has_no_quorum_in_the_json():
    bylaws = check_bylaws(VALID, network_fee_bps=NETWORK_FEE)
    assert bylaws_document(bylaws)["strike"] == {"called_by": "operator"}
    assert bylaws_from_json(bylaws_json(bylaws), network_fee_bps=NETWORK_FEE) == bylaws


@pytest.mark.parametrize(("format_member", "reason"), [
    (None, "format is missing"), ("motus-bylaws-v0", 'format is "motus-bylaws-v0"')])
def test_json_needs_the_format(format_member, reason):
    document = bylaws_document(check_bylaws(VALID, network_fee_bps=NETWORK_FEE))
    document["format"] = format_member
    if format_member is None:
        del document["format"]
    with pytest.raises(InvalidBylaws) as caught:
        bylaws_from_json(json.dumps(document), network_fee_bps=NETWORK_FEE)
    assert [p for p in caught.value.problems if reason in p]


def test_json_problems_are_collected_too():
    document = {"format": "other", **changed(member_share_bps=1)}
    with pytest.raises(InvalidBylaws) as caught:
        bylaws_from_json(json.dumps(document), network_fee_bps=NETWORK_FEE)
    assert len(caught.value.problems) == 2
    with pytest.raises(InvalidBylaws, match="not valid JSON"):
        bylaws_from_json(b"{", network_fee_bps=NETWORK_FEE)
    with pytest.raises(InvalidBylaws, match="must be an object"):
        bylaws_from_json(b"[]", network_fee_bps=NETWORK_FEE)


def test_bylaws_json_is_byte_stable():
    text = EXAMPLE.read_text("utf-8")
    first = parse_bylaws(text, network_fee_bps=NETWORK_FEE)
    again = parse_bylaws(text, network_fee_bps=NETWORK_FEE)
    assert bylaws_json(first) == bylaws_json(again)
    # Another key order, and the sets listed in another order: the same bytes.
    document = tomllib.loads(text)
    shuffled = {key: document[key] for key in reversed(list(document))}
    shuffled["allowed_purposes"] = list(reversed(shuffled["allowed_purposes"]))
    reordered = parse_bylaws(tomli_w.dumps(shuffled), network_fee_bps=NETWORK_FEE)
    assert bylaws_json(reordered) == bylaws_json(first)
    assert bylaws_hash(reordered) == bylaws_hash(first) == hashlib.sha256(bylaws_json(first)).hexdigest()
    assert bylaws_hash(check_bylaws(VALID, network_fee_bps=NETWORK_FEE)) != bylaws_hash(first)


def test_bylaws_are_frozen():
    bylaws = check_bylaws(VALID, network_fee_bps=NETWORK_FEE)
    with pytest.raises(ValueError):
        bylaws.member_share_bps = 9000  # type: ignore[misc]


LICENSED = check_bylaws(changed(privileges=["non-location"], min_price_minor=200),
                        network_fee_bps=NETWORK_FEE)


@pytest.mark.parametrize(("purpose", "privileges", "price", "reasons"), [
    (Purpose.RESEARCH, {Privilege.NON_LOCATION}, 200, []),
    (Purpose.SAFETY, {Privilege.NON_LOCATION}, 10_000, []),
    (Purpose.MARKETING, {Privilege.NON_LOCATION}, 200, ["forbid the purpose marketing"]),
    (Purpose.FLEET, {Privilege.NON_LOCATION}, 200, ["purpose fleet is not among"]),
    (Purpose.RESEARCH, {Privilege.NON_LOCATION, Privilege.LOCATION}, 200, ["does not license location"]),
    (Purpose.RESEARCH, set(), 200, ["at least one privilege class"]),
    (Purpose.RESEARCH, {Privilege.NON_LOCATION}, 199, ["price 199 is below the bylaws' minimum of 200"]),
    (Purpose.MARKETING, {Privilege.LOCATION}, 0,
     ["forbid the purpose marketing", "does not license location", "price 0 is below"]),
])
def test_licensable(purpose, privileges, price, reasons):
    found = licensable(LICENSED, purpose, privileges, price)
    assert len(found) == len(reasons), found
    for reason, line in zip(reasons, found, strict=True):
        assert reason in line


@st.composite
def splits_within_limits(draw):
    """(member share, operator fee, network fee) within every limit."""
    member = draw(st.integers(MIN_MEMBER_SHARE_BPS, 10_000))
    operator = draw(st.integers(0, min(MAX_OPERATOR_FEE_BPS, 10_000 - member)))
    return member, operator, draw(st.integers(0, 10_000 - member - operator))


@given(splits_within_limits())
def test_any_split_within_the_limits_passes(split):
    member, operator, network = split
    document = changed(member_share_bps=member, operator_fee_bps=operator)
    bylaws = check_bylaws(document, network_fee_bps=network)
    assert (bylaws.member_share_bps, bylaws.operator_fee_bps) == (member, operator)


@given(st.integers(-1_000, 12_000), st.integers(-1_000, 12_000), st.integers(0, 10_000))
def test_a_split_is_refused_exactly_when_it_breaks_a_limit(member, operator, network):
    within = (MIN_MEMBER_SHARE_BPS <= member <= 10_000 and 0 <= operator <= MAX_OPERATOR_FEE_BPS
              and member + operator + network <= 10_000)
    document = changed(member_share_bps=member, operator_fee_bps=operator)
    if within:
        check_bylaws(document, network_fee_bps=network)
    else:
        assert problems_of(document, network_fee_bps=network)


def test_direct_construction_checks_the_rules_too():
    with pytest.raises(ValueError, match="at least 7000"):
        Bylaws.model_validate(changed(member_share_bps=100))

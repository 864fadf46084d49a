"""The demo's report reads at 80 columns: values and units shown, ids whole."""

from __future__ import annotations

import uuid
from collections import Counter

from motus.demo import DemoReport, _print_report
from motus.demo_agent import AgentCarOutcome
from motus.demo_movement import MovementOutcome
from tests.fixtures.screen import assert_readable, rendered

VEHICLE = uuid.UUID("5f0c8d5e-2a53-4d0a-9c6e-0b1f3c5d7e90")
LATEST = {"vehicle_id": str(VEHICLE), "signals": [
    {"name": "powertrainTransmissionTravelledDistance", "value": 123456.789, "unit": "km",
     "timestamp": "2026-11-22T08:15:42.250000Z", "privilege": "non-location"},
    {"name": "powertrainFuelSystemRelativeLevel", "value": 57.3, "unit": "percent",
     "timestamp": "2026-11-22T08:15:42Z", "privilege": "non-location"},
    {"name": "currentLocationCoordinates", "value": {"latitude": 48.137201, "longitude": 11.575599,
                                                     "hdop": 0.9},
     "unit": "", "timestamp": "2026-11-22T08:15:43Z", "privilege": "location"},
]}


def report() -> DemoReport:
    agent = AgentCarOutcome("mabcdefghijklmnopqrstuvwx", 0, "ELM327 v1.5 on ISO 15765-4 CAN",
                            {"speed": 40, "obdDTCList": 1, "currentLocationCoordinates": 40})
    movement = MovementOutcome({}, {VEHICLE: "fleet car 1"}, {VEHICLE}, set())
    return DemoReport(published=60, stored=60, duplicates=1, resent=1,
                      quarantined=Counter({"bad_signature": 1}),
                      expected_quarantine=Counter({"bad_signature": 1}), latency_s=1.5, latest=LATEST,
                      latest_device="mzyxwvutsrqponmlkjihgfedc", agent_car=agent, movement=movement,
                      access=[("anonymous client", "Not authorized")])


def test_the_demo_report_shows_every_value_and_unit_at_80_columns():
    text = rendered(lambda console: _print_report(console, report()))
    assert_readable(text, [
        str(VEHICLE), "mzyxwvutsrqponmlkjihgfedc", "mabcdefghijklmnopqrstuvwx",
        "powertrainTransmissionTravelledDistance", "123456.789 km", "57.3 percent",
        "48.13720, 11.57560", "08:15:42", "ELM327 v1.5 on ISO 15765-4 CAN", "Not authorized",
    ])
    line = next(line for line in text.splitlines() if "powertrainFuelSystemRelativeLevel" in line)
    assert "57.3 percent" in line  # value and unit beside their name


def test_the_json_report_says_whether_the_run_was_ok():
    good = report()
    assert good.to_json()["ok"] is True
    bad = report()
    bad.stored = 59
    assert bad.to_json()["ok"] is False and bad.to_json()["stored"] == 59


def test_the_demo_fails_when_the_agent_car_is_not_proved_moved():
    from datetime import date

    from movement.proof import Measures, Proof, Verdict

    day = date(2026, 11, 30)
    measures = Measures(VEHICLE, day, 0.6, 0.6, 0.6, 58_000.0, 58_000.6, 40, 0, frozenset(), (), ())

    def proof(verdict: Verdict) -> Proof:
        return Proof(VEHICLE, day, verdict, 0.6, measures, ())

    for verdict, ok in ((Verdict.MOVED, True), (Verdict.STILL, False), (Verdict.INSUFFICIENT, False)):
        outcome = MovementOutcome({VEHICLE: proof(verdict)}, {VEHICLE: "the agent car"}, {VEHICLE}, set(),
                                  driven={VEHICLE})
        assert outcome.ok is ok, verdict
    assert not MovementOutcome({}, {VEHICLE: "the agent car"}, {VEHICLE}, set(), driven={VEHICLE}).ok

"""SAE J1979 decoding: support bitmaps, trouble codes, VIN; and the poll schedule."""

import json

import pytest

from device_agent.obd import (
    decode_dtcs,
    decode_mode01,
    decode_vin,
    dtc_code,
    dtc_list_value,
    pids_from_bitmap,
)
from device_agent.polling import ObdPlan, PollSchedule


def test_support_bitmap_of_the_j1979_example():
    # 41 00 BE 1F A8 13: the PIDs-supported example of SAE J1979 / Wikipedia "OBD-II PIDs".
    pids = pids_from_bitmap(0x00, bytes.fromhex("BE1FA813"))
    assert sorted(pids) == [0x01, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11,
                            0x13, 0x15, 0x1C, 0x1F, 0x20]
    assert pids_from_bitmap(0x20, bytes.fromhex("00000001")) == {0x40}


@pytest.mark.parametrize(("raw", "code"), [
    ("0133", "P0133"), ("4123", "C0123"), ("8001", "B0001"), ("C123", "U0123"), ("3FFF", "P3FFF"),
])
def test_dtc_codes_follow_sae_j2012(raw, code):
    assert dtc_code(bytes.fromhex(raw)) == code


def test_dtc_answers_on_can_and_older_buses():
    assert decode_dtcs(bytes.fromhex("43020133C123"), can=True) == ["P0133", "U0123"]
    assert decode_dtcs(bytes.fromhex("4300"), can=True) == []
    assert decode_dtcs(bytes.fromhex("43013300000000"), can=False) == ["P0133"]
    assert json.loads(dtc_list_value(["U0123", "P0133", "P0133"])) == ["P0133", "U0123"]
    with pytest.raises(ValueError, match="mode 03"):
        decode_dtcs(bytes.fromhex("4100"), can=True)


def test_mode01_values_through_the_catalog():
    assert [(v.name, v.value) for v in decode_mode01(bytes.fromhex("410C1AF8"))] == [
        ("powertrainCombustionEngineSpeed", 1726.0)]  # (256*0x1A+0xF8)/4
    assert [(v.name, v.value) for v in decode_mode01(bytes.fromhex("41057B"))] == [
        ("powertrainCombustionEngineECT", 83.0)]
    with pytest.raises(ValueError, match="needs 2 data bytes"):
        decode_mode01(bytes.fromhex("410C1A"))


def test_vin_with_item_count_or_padding():
    assert decode_vin(b"\x49\x02\x01" + b"1D4GP00R55B123456") == "1D4GP00R55B123456"
    assert decode_vin(b"\x49\x02\x00\x00\x00" + b"1D4GP00R55B123456") == "1D4GP00R55B123456"
    with pytest.raises(ValueError, match="17"):
        decode_vin(b"\x49\x02\x01ABC")


def test_schedule_keeps_each_rate_and_does_not_burst_after_a_stall():
    schedule = PollSchedule({0x0C: 5.0, 0xA6: 1.0}, now=0.0)
    polled: list[int] = []
    t = 0.0
    while t < 10.0:
        while (pid := schedule.pop_due(t)) is not None:
            polled.append(pid)
        t += 0.01
    assert polled.count(0x0C) == pytest.approx(50, abs=1)
    assert polled.count(0xA6) == pytest.approx(10, abs=1)
    # A 5 s stall (adapter hung): afterwards each PID is asked once, not 25 times.
    stalled = []
    while (pid := schedule.pop_due(15.0)) is not None:
        stalled.append(pid)
    assert sorted(stalled) == [0x0C, 0xA6]


def test_plan_polls_a_pid_at_the_fastest_rate_of_its_signals():
    plan = ObdPlan({"speed": 2.0, "powertrainCombustionEngineSpeed": 5.0})
    assert plan.pid_rates() == {0x0D: 2.0, 0x0C: 5.0}
    with pytest.raises(KeyError, match="no SAE J1979"):
        ObdPlan({"currentLocationCoordinates": 1.0}).pid_rates()

"""The standard drive cycles carried with the simulators, and a car driving them."""

import itertools
import math

import pytest

from protocol.envelope import Location
from simulators.drive_cycles import CAR_CYCLES, busiest_stretch, cycle_distance_km, drive_cycle
from simulators.vehicle import SimulatedVehicle


@pytest.mark.parametrize(("cycle", "seconds", "km"), [
    ("WLTC", 1800, 23.27),  # UN ECE R154: class 3b, 1800 s, 23.27 km
    ("NEDC", 1180, 11.0),   # UN ECE R83: 1180 s, 11.0 km
])
def test_cycles_have_their_published_length_and_distance(cycle, seconds, km):
    speeds = drive_cycle(cycle)
    assert abs(len(speeds) - seconds) <= 21
    assert cycle_distance_km(cycle) == pytest.approx(km, rel=0.015)


def test_unknown_cycle_is_named():
    with pytest.raises(KeyError, match="CADC Urban"):
        drive_cycle("FTP-75")


@pytest.mark.parametrize("cycle", CAR_CYCLES)
@pytest.mark.parametrize("electric", [False, True])
def test_a_car_on_each_cycle_keeps_odometer_speed_and_energy_consistent(cycle, electric):
    car = SimulatedVehicle(drive_cycle(cycle), start=Location(latitude=45.0, longitude=7.0),
                           heading_deg=90, odometer_km=100.0, electric=electric)
    for _ in range(len(car.profile) - 1):
        car.step(1.0)
    travelled = car.state.odometer_km - 100.0
    assert math.isclose(travelled, cycle_distance_km(cycle), rel_tol=1e-9)
    values = car.values()
    if electric:
        assert "powertrainCombustionEngineSpeed" not in values
        assert values["powertrainTractionBatteryStateOfChargeCurrent"] < 80.0
    else:
        assert values["powertrainFuelSystemRelativeLevel"] < 80.0


def test_the_busiest_stretch_is_where_the_trace_covers_most_distance():
    speeds = [0.0, 40.0, 40.0, 40.0, 40.0, 40.0, 0.0, 90.0, 0.0]
    assert busiest_stretch(speeds, 1) == 6  # the burst to 90 km/h (the earlier of its two seconds)
    assert busiest_stretch(speeds, 4) == 1  # four seconds at 40 km/h cover more than any with it
    assert busiest_stretch([30.0] * 5, 2) == 0  # the earliest of equals
    assert busiest_stretch([0.0, 40.0, 0.0], 5) == 0  # nothing longer to choose from
    with pytest.raises(ValueError, match="at least a second"):
        busiest_stretch(speeds, 0)


def test_a_town_drive_starts_standing_and_the_artemis_motorway_covers_half_a_km_in_15_s():
    """Why the demo's agent car joins the Artemis cycle on its motorway, not its town start:
    the agent reads it at real time for seconds, and a proof of movement needs 0.5 km."""
    urban, artemis = drive_cycle("CADC Urban"), drive_cycle("CADC")
    assert urban[:20] == (0.0,) * 20

    def covered_km(speeds, start, seconds):
        return sum((a + b) / 2 for a, b in itertools.pairwise(speeds[start:start + seconds + 1])) / 3600

    assert covered_km(urban, busiest_stretch(urban, 25), 25) < 0.5
    start = busiest_stretch(artemis, 15)
    assert start > len(urban) and min(artemis[start:start + 16]) > 120
    assert covered_km(artemis, start, 15) > 0.6

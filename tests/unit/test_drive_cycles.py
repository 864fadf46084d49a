"""The standard drive cycles carried with the simulators, and a car driving them."""

import math

import pytest

from protocol.envelope import Location
from simulators.drive_cycles import CAR_CYCLES, cycle_distance_km, drive_cycle
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

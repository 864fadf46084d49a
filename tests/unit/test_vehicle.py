import itertools
import math
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.catalog import load_catalog
from protocol.envelope import Location, build_event
from protocol.validation import check_readings
from simulators.fleet import make_fleet
from simulators.vehicle import IDLE_RPM, LiveVehicle, SimulatedVehicle, stop_and_go_profile


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_odometer_gps_and_speed_tell_the_same_story(seed):
    profile = stop_and_go_profile(seed, 900)
    car = SimulatedVehicle(profile, start=Location(latitude=48.1, longitude=11.5),
                           heading_deg=0, odometer_km=1000.0, seed=seed)
    gps_km = 0.0
    speed_integral_km = 0.0
    previous = car.state
    for _ in range(len(profile) - 1):
        state = car.step(1.0)
        gps_km += haversine_km((previous.latitude, previous.longitude),
                               (state.latitude, state.longitude))
        speed_integral_km += (previous.speed_kmh + state.speed_kmh) / 2 / 3600
        assert state.rpm >= IDLE_RPM
        assert 0 <= state.speed_kmh <= 130
        previous = state
    odometer_km = car.state.odometer_km - 1000.0
    assert odometer_km > 1.0
    assert math.isclose(odometer_km, speed_integral_km, rel_tol=1e-9)
    assert math.isclose(gps_km, odometer_km, rel_tol=0.005)


def test_profile_accelerations_are_those_of_a_car():
    profile = stop_and_go_profile(1, 3600)
    steps = [(b - a) / 3.6 for a, b in itertools.pairwise(profile)]
    assert max(steps) <= 1.6 and min(steps) >= -2.6  # m/s^2
    assert profile.count(0.0) > 30  # it stops


def test_fleet_is_reproducible_and_distinct():
    a, b = make_fleet(3, seed=5, drive_seconds=10), make_fleet(3, seed=5, drive_seconds=10)
    assert [c.device_id for c in a] == [c.device_id for c in b]
    assert len({c.device_id for c in a}) == 3
    assert len({c.vin for c in a}) == 3


def test_readings_satisfy_the_catalog():
    car = make_fleet(1, seed=9, drive_seconds=600)[0]
    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    for second in range(600):
        car.vehicle.step(1.0)
        event = build_event(device_id=car.device_id, boot_id="b", seq=second, time=now,
                            signals=car.vehicle.readings(now))
        check_readings(event, load_catalog(), now)


def test_a_live_vehicle_drives_on_from_where_its_vehicle_is():
    profile = [0.0] * 10 + [72.0] * 50
    model = SimulatedVehicle(profile, start=Location(latitude=48.1, longitude=11.5), heading_deg=0,
                             odometer_km=1000.0)
    for _ in range(12):  # driven into the cycle before anyone reads it
        model.step(1.0)
    now = [100.0]
    car = LiveVehicle(model, lambda: now[0])
    assert car.advance().elapsed_s == 12.0  # not back to the start, nor held until second 12
    before = car.vehicle.state.odometer_km
    now[0] += 5.0
    state = car.advance()
    assert state.elapsed_s == 17.0 and state.speed_kmh == 72.0
    assert math.isclose(state.odometer_km - before, 0.1, rel_tol=1e-9)  # 5 s at 20 m/s

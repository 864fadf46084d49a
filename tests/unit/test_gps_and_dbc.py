"""NMEA decoding against the NMEA generator and real sentences; DBC decoding with opendbc's file."""

from datetime import UTC, datetime

import pytest
from cantools.database.can import Database

from device_agent.dbc import DbcDecoder, DbcMapping, load_can_database
from device_agent.errors import AgentError
from device_agent.gps import NmeaDecoder
from protocol.envelope import Location
from simulators import data_file
from simulators.nmea import sentences
from simulators.vehicle import SimulatedVehicle

# From the NMEA 0183 examples every receiver manual quotes (checksums valid).
REAL_GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
REAL_RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"


def test_real_sentences_give_a_fix_stamped_with_gps_time():
    decoder = NmeaDecoder(speed_from_gps=True)
    assert decoder.feed(REAL_GGA) == []
    readings = {r.name: r for r in decoder.feed(REAL_RMC)}
    expected = Location(latitude=48.1173, longitude=11.516666666666667, hdop=0.9)
    assert readings["currentLocationCoordinates"].value == expected
    assert readings["currentLocationCoordinates"].timestamp == datetime(1994, 3, 23, 12, 35, 19, tzinfo=UTC)
    assert readings["currentLocationAltitude"].value == 545.4
    assert readings["dimoAftermarketNSAT"].value == 8.0
    assert readings["speed"].value == pytest.approx(22.4 * 1.852, abs=0.01)


def test_generated_sentences_round_trip_and_void_fixes_are_dropped():
    car = SimulatedVehicle([36.0] * 30, start=Location(latitude=-33.8688, longitude=151.2093),
                           heading_deg=270, odometer_km=5)
    for _ in range(10):
        car.step(1.0)
    at = datetime(2026, 11, 21, 10, 0, 1, 250000, tzinfo=UTC)
    decoder = NmeaDecoder()
    readings = [r for line in sentences(car.state, at) for r in decoder.feed(line)]
    location = next(r.value for r in readings if r.name == "currentLocationCoordinates")
    assert isinstance(location, Location)
    assert location.latitude == pytest.approx(car.state.latitude, abs=2e-6)
    assert location.longitude == pytest.approx(car.state.longitude, abs=2e-6)
    assert next(r.value for r in readings if r.name == "currentLocationHeading") == 270.0
    assert [r for line in sentences(car.state, at, fix=False) for r in decoder.feed(line)] == []
    assert decoder.feed(REAL_RMC[:-2] + "00") == [] and decoder.bad_sentences == 1


def prius() -> Database:
    return load_can_database(data_file("toyota_prius_2010_pt.dbc"))


def test_dbc_frames_map_to_catalog_names_at_their_rate():
    db = prius()
    decoder = DbcDecoder(db, [DbcMapping("SPEED", "SPEED", "speed", scale=1.609344, rate_hz=2),
                              DbcMapping("POWERTRAIN", "ENGINE_RPM", "powertrainCombustionEngineSpeed")])
    speed = db.get_message_by_name("SPEED")
    frame = speed.encode({"SPEED": 50.0, "ENCODER": 0, "CHECKSUM": 0})
    [(name, value)] = decoder.decode(speed.frame_id, frame, now=0.0)
    assert name == "speed" and value == pytest.approx(80.4672, abs=0.01)
    assert decoder.decode(speed.frame_id, frame, now=0.2) == []  # 2 Hz: next one at 0.5 s
    assert decoder.decode(speed.frame_id, frame, now=0.5) != []
    assert decoder.decode(0x123, b"\x00" * 8, now=1.0) == []
    assert decoder.decode(speed.frame_id, b"\x01", now=9.0) == []  # truncated frame: skipped


def test_dbc_mapping_errors_name_the_problem():
    with pytest.raises(AgentError, match="no message"):
        DbcDecoder(prius(), [DbcMapping("NOPE", "X", "speed")])
    with pytest.raises(AgentError, match="no signal"):
        DbcDecoder(prius(), [DbcMapping("SPEED", "NOPE", "speed")])
    with pytest.raises(AgentError, match="catalog"):
        DbcDecoder(prius(), [DbcMapping("SPEED", "SPEED", "warpFactor")])

"""The agent's sources against simulated hardware on real ptys and python-can's virtual bus."""

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import can
import obd

from device_agent.agent import ReadingQueue
from device_agent.backoff import Backoff
from device_agent.can_source import CanSource
from device_agent.dbc import DbcDecoder, DbcMapping, load_can_database
from device_agent.elm327_serial import ElmSource, SerialTransport
from device_agent.gps_serial import GpsSource
from device_agent.polling import ObdPlan
from protocol.envelope import Location, SignalReading
from simulators import data_file
from simulators.can_ecus import Broadcast, CanEcus
from simulators.drive_cycles import drive_cycle
from simulators.ecu import EmulatedEcu
from simulators.elm327_emulator import Elm327Emulator, PtyElm327, Quirks
from simulators.nmea import PtyNmea, sentences
from simulators.vehicle import LiveVehicle, SimulatedVehicle
from tests.fixtures.helpers import wait_until

VIN = "JH4KA7561PC008269"


def live_car(speedup: float = 20.0) -> LiveVehicle:
    model = SimulatedVehicle(drive_cycle("WLTC"), start=Location(latitude=48.1, longitude=11.5),
                             heading_deg=0, odometer_km=1234.5)
    return LiveVehicle(model, time.monotonic, speedup=speedup)


def collect(queue: ReadingQueue, into: list[SignalReading]) -> list[SignalReading]:
    into.extend(queue.take_all())
    return into


def test_python_obd_talks_to_the_emulator():
    """A third-party OBD client (python-OBD) connects, discovers and reads like on a real car."""
    car = live_car()
    emulator = Elm327Emulator([EmulatedEcu(values=car.values, vin=VIN, dtcs=["P0301"])])
    with PtyElm327(emulator) as pty:
        connection = obd.OBD(pty.port, baudrate=38400, fast=False, timeout=2)
        try:
            assert connection.status() == obd.OBDStatus.CAR_CONNECTED
            assert connection.protocol_id() == "6"
            rpm = connection.query(obd.commands.RPM).value.magnitude
            assert rpm >= 750
            assert connection.query(obd.commands.SPEED).value.magnitude >= 0
            assert connection.query(obd.commands.VIN).value.decode() == VIN
            assert connection.query(obd.commands.GET_DTC).value[0][0] == "P0301"
            assert obd.commands.FUEL_LEVEL in connection.supported_commands
        finally:
            connection.close()


def test_elm_source_polls_at_its_rates_and_survives_an_unplugged_adapter(tmp_path: Path):
    car = live_car()
    link = tmp_path / "obd-adapter"  # like a udev symlink to whichever tty the adapter gets

    def plug(quirks: Quirks) -> PtyElm327:
        pty = PtyElm327(Elm327Emulator([EmulatedEcu(values=car.values, vin=VIN)], quirks=quirks))
        link.unlink(missing_ok=True)
        link.symlink_to(pty.port)
        return pty.__enter__()

    first = plug(Quirks(echo_stuck=True, unknown_at={"ATAT1"}))
    queue = ReadingQueue()
    vins: list[str] = []
    source = ElmSource(lambda: SerialTransport.open(str(link)),
                       ObdPlan({"speed": 5.0, "powertrainCombustionEngineSpeed": 5.0,
                                "powertrainTransmissionTravelledDistance": 1.0}, dtc_interval_s=60),
                       queue, on_vin=vins.append, backoff=Backoff(0.1, 0.2))
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(stop,), daemon=True)
    thread.start()
    readings: list[SignalReading] = []
    second = None
    try:
        wait_until(lambda: len(collect(queue, readings)) >= 20, 15, "readings through the adapter")
        first.close()  # unplugged
        second = plug(Quirks(reply_delay_s=0.01))
        wait_until(lambda: source.sessions == 2, 15, "a new session on the replugged adapter")
        before = len(readings)
        wait_until(lambda: len(collect(queue, readings)) >= before + 10, 15, "readings after replugging")
    finally:
        stop.set()
        thread.join(timeout=10)
        if second is not None:
            second.close()
    names = Counter(r.name for r in readings)
    assert names["speed"] >= 10 and names["powertrainCombustionEngineSpeed"] >= 10
    assert names["obdDTCList"] >= 2  # read once per session
    assert 0 < names["powertrainTransmissionTravelledDistance"] < names["speed"]
    assert vins == [VIN, VIN]
    odometer = [r.value for r in readings if r.name == "powertrainTransmissionTravelledDistance"]
    assert all(isinstance(v, float) and v >= 1234.5 for v in odometer)


def test_can_source_polls_over_iso_tp_and_decodes_broadcast_frames():
    car = live_car(speedup=30)
    database = load_can_database(data_file("toyota_prius_2010_pt.dbc"))
    ecus = [EmulatedEcu(values=car.values, vin=VIN, dtcs=["P0420"]),
            EmulatedEcu(can_id=0x7E9, values=lambda: {"speed": car.values()["speed"]})]
    broadcasts = [Broadcast("SPEED", 0.02, lambda: {"SPEED": car.values()["speed"] / 1.609344})]
    channel = f"motus-test-{time.monotonic_ns()}"
    ecu_bus = can.Bus(interface="virtual", channel=channel)
    queue = ReadingQueue()
    vins: list[str] = []
    decoder = DbcDecoder(database, [DbcMapping("SPEED", "SPEED", "exteriorAirTemperature", rate_hz=5)])
    source = CanSource(lambda: can.Bus(interface="virtual", channel=channel), queue,
                       plan=ObdPlan({"powertrainCombustionEngineSpeed": 5.0,
                                     "powertrainTransmissionTravelledDistance": 1.0}),
                       decoder=decoder, on_vin=vins.append)
    stop = threading.Event()
    readings: list[SignalReading] = []
    with CanEcus(ecu_bus, ecus, database=database, broadcasts=broadcasts) as sim:
        thread = threading.Thread(target=source.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until(lambda: Counter(r.name for r in collect(queue, readings))[
                "powertrainCombustionEngineSpeed"] >= 10, 15, "OBD-II readings over ISO-TP")
        finally:
            stop.set()
            thread.join(timeout=10)
        assert sim.requests > 10
    ecu_bus.shutdown()
    names = Counter(r.name for r in readings)
    assert vins == [VIN]  # a 20-byte answer: first frame, flow control to 0x7E0, consecutive frames
    assert "P0420" in str(next(r.value for r in readings if r.name == "obdDTCList"))
    assert names["exteriorAirTemperature"] >= 2  # decoded from the broadcast SPEED frames
    passive = [r.value for r in readings if r.name == "exteriorAirTemperature"]
    polled = [r.value for r in readings if r.name == "powertrainCombustionEngineSpeed"]
    assert all(isinstance(v, float) and v >= 0 for v in passive)
    assert all(isinstance(v, float) and v >= 750 for v in polled)


def test_gps_source_reads_a_receiver_on_a_pty():
    car = live_car()
    receiver = PtyNmea()
    queue = ReadingQueue()
    source = GpsSource(receiver.port, queue)
    stop = threading.Event()
    feeding = threading.Thread(target=receiver.feed_from, daemon=True,
                               args=(lambda: sentences(car.advance(), datetime.now(UTC)), 0.05, stop))
    reading = threading.Thread(target=source.run, args=(stop,), daemon=True)
    reading.start()
    feeding.start()
    readings: list[SignalReading] = []
    try:
        wait_until(lambda: sum(r.name == "currentLocationCoordinates"
                               for r in collect(queue, readings)) >= 5, 15, "GPS fixes")
    finally:
        stop.set()
        feeding.join(timeout=5)
        reading.join(timeout=5)
        receiver.close()
    fix = next(r.value for r in readings if r.name == "currentLocationCoordinates")
    assert isinstance(fix, Location)
    assert abs(fix.latitude - 48.1) < 0.05 and abs(fix.longitude - 11.5) < 0.05
    assert fix.hdop == 0.9

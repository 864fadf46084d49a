"""The ELM327 core and the OBD-II session logic, driven by the emulator's pure core."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_agent.elm327 import (
    PROTOCOLS,
    FrameError,
    ReplyFramer,
    ReplyKind,
    interpret,
    parse_messages,
    protocol_from_dpn,
)
from device_agent.elm327_client import Elm327Client
from device_agent.errors import AdapterError
from device_agent.obd import decode_vin
from protocol.catalog import load_catalog
from simulators.ecu import EmulatedEcu
from simulators.elm327_emulator import Elm327Emulator, Quirks

CAN11 = PROTOCOLS["6"]


class EmulatorTransport:
    """The emulator's bytes, cut at the prompt the way the serial driver does."""

    def __init__(self, emulator: Elm327Emulator) -> None:
        self.emulator = emulator
        self.framer = ReplyFramer()

    def exchange(self, command: str, timeout_s: float) -> str:
        replies = self.framer.feed(self.emulator.handle(command))
        assert len(replies) == 1
        return replies[0]

    def close(self) -> None:
        pass


def client_for(values, *, protocol="6", quirks=None, vin="JH4KA7561PC008269", dtcs=()):
    ecu = EmulatedEcu(values=lambda: values, vin=vin, dtcs=list(dtcs))
    emulator = Elm327Emulator([ecu], protocol=protocol, quirks=quirks)
    return Elm327Client(EmulatorTransport(emulator)), emulator


def test_framer_cuts_at_prompts_across_chunks_and_drops_nuls():
    framer = ReplyFramer()
    assert framer.feed(b"41 0C 1A") == []
    assert framer.feed(b" F8\r\r>\x0041 0D") == ["41 0C 1A F8\r\r"]
    assert framer.feed(b" 32\r>") == ["41 0D 32\r"]


@pytest.mark.parametrize(("raw", "kind"), [
    ("NO DATA\r", ReplyKind.NO_DATA),
    ("SEARCHING...\rUNABLE TO CONNECT\r", ReplyKind.UNABLE_TO_CONNECT),
    ("BUS INIT: ...ERROR\r", ReplyKind.BUS_INIT_ERROR),
    ("STOPPED\r", ReplyKind.STOPPED),
    ("CAN ERROR\r", ReplyKind.CAN_ERROR),
    ("BUFFER FULL\r", ReplyKind.BUFFER_FULL),
    ("<RX ERROR\r", ReplyKind.BUS_ERROR),
    ("?\r", ReplyKind.UNKNOWN_COMMAND),
    ("LV RESET\r", ReplyKind.RESET),
])
def test_adapter_errors_are_classified(raw, kind):
    assert interpret("010C", raw).kind is kind


def test_echo_searching_and_bus_init_lines_are_dropped():
    reply = interpret("010C", "010C\rSEARCHING...\rBUS INIT: ...OK\r7E8 04 41 0C 1A F8\r\r")
    assert reply.kind is ReplyKind.DATA
    assert reply.lines == ("7E8 04 41 0C 1A F8",)
    assert interpret("ATE0", "ATE0\rOK\r").kind is ReplyKind.OK
    assert interpret("ATDPN", "A6\r").text == "A6"


def test_can_frames_with_and_without_spaces():
    for line in ("7E8 06 41 00 BE 3F A8 13 00", "7E806410 0BE3FA81300".replace(" ", "")):
        [message] = parse_messages(interpret("0100", line), CAN11)
        assert message.ecu == "7E8"
        assert message.data == bytes.fromhex("4100BE3FA813")


def test_multi_frame_vin_is_reassembled_per_ecu():
    # The VIN answer of a 2005 Dodge as an ELM327 prints it with headers on.
    raw = ("7E8 10 14 49 02 01 31 44 34\r7E9 03 7F 09 12\r7E8 21 47 50 30 30 52 35 35\r"
           "7E8 22 42 31 32 33 34 35 36\r")
    messages = parse_messages(interpret("0902", raw), CAN11)
    assert [m.ecu for m in messages] == ["7E8", "7E9"]
    assert decode_vin(messages[0].data) == "1D4GP00R55B123456"
    assert messages[1].data == bytes.fromhex("7F0912")  # negative response, kept as sent


def test_consecutive_frames_out_of_order_are_refused():
    raw = "7E8 10 14 49 02 01 31 44 34\r7E8 22 42 31 32 33 34 35 36\r"
    with pytest.raises(FrameError, match="out of order"):
        parse_messages(interpret("0902", raw), CAN11)


def test_legacy_bus_frames_drop_header_and_checksum():
    [message] = parse_messages(interpret("010C", "48 6B 10 41 0C 1A F8 8A\r"), PROTOCOLS["3"])
    assert message.ecu == "10"
    assert message.data == bytes.fromhex("410C1AF8")


def test_protocol_number_from_atdpn():
    assert protocol_from_dpn(interpret("ATDPN", "A7\r")).header_hex_digits == 8
    assert protocol_from_dpn(interpret("ATDPN", "3\r")).is_can is False
    with pytest.raises(ValueError, match="not a protocol"):
        protocol_from_dpn(interpret("ATDPN", "XYZ\r"))


@pytest.mark.parametrize("protocol", ["3", "5", "6", "7", "8"])
def test_session_on_every_bus_reads_values_vin_and_codes(protocol):
    client, emulator = client_for({"speed": 87.0, "powertrainCombustionEngineSpeed": 2310.5,
                                   "powertrainTransmissionTravelledDistance": 123456.7},
                                  protocol=protocol, dtcs=["P0301", "U0123", "C1234", "B0001"])
    info = client.initialise()
    assert info.protocol.number == protocol
    assert {0x0C, 0x0D, 0xA6} <= info.supported_pids
    assert emulator.commands[:7] == ["ATZ", "ATE0", "ATL0", "ATS0", "ATAT1", "ATH1", "ATSP0"]
    assert [(v.name, v.value) for v in client.read_mode01(0x0D)] == [("speed", 87.0)]
    assert [(v.name, v.value) for v in client.read_mode01(0x0C)] == [
        ("powertrainCombustionEngineSpeed", 2310.5)]
    assert [(v.name, v.value) for v in client.read_mode01(0xA6)] == [
        ("powertrainTransmissionTravelledDistance", 123456.7)]
    assert client.read_mode01(0x05) is None  # the car has no coolant sensor: NO DATA
    assert client.read_vin() == "JH4KA7561PC008269"
    assert sorted(client.read_dtcs()) == ["B0001", "C1234", "P0301", "U0123"]


def test_clone_quirks_are_tolerated():
    quirks = Quirks(echo_stuck=True, stopped_every=3, unknown_at={"ATAT1", "ATS0"})
    client, emulator = client_for({"speed": 50.0}, quirks=quirks)
    client.initialise()
    for _ in range(6):  # every third request is STOPPED; each is retried once
        assert [(v.name, v.value) for v in client.read_mode01(0x0D)] == [("speed", 50.0)]
    assert emulator.requests > 6


def test_no_car_is_a_clear_error():
    client, _ = client_for({"speed": 1.0})
    client.transport.emulator.ecus.clear()
    with pytest.raises(AdapterError, match="ignition"):
        client.initialise()


MODE01 = [s for s in load_catalog() if s.obd is not None and s.obd.mode == "01" and s.obd.mask is None
          and s.min is not None and s.max is not None]


@settings(max_examples=60, deadline=None)
@given(spec=st.sampled_from(MODE01), fraction=st.floats(0, 1))
def test_emulated_values_decode_within_one_step_of_resolution(spec, fraction):
    obd = spec.obd
    low = max(spec.min, obd.offset)
    high = min(spec.max, obd.offset + obd.scale * ((1 << (8 * obd.length)) - 1))
    value = low + (high - low) * fraction
    client, _ = client_for({spec.name: value})
    client.initialise()
    decoded = {v.name: v.value for v in client.read_mode01(int(obd.pid, 16))}
    assert decoded[spec.name] == pytest.approx(value, abs=abs(obd.scale) / 2 + 1e-6)

"""The DBC loader over every DBC file the `opendbc` package ships (its own and the ones its
generator assembles): each loads, a sample of its messages decodes back through DbcDecoder,
and each slip that real files make has a focused test on a small hand-written DBC."""

from __future__ import annotations

import logging
import re
from functools import cache
from pathlib import Path

import can
import pytest
from cantools.database.can import Database, Message, Signal
from cantools.database.errors import Error as CantoolsError

from device_agent.dbc import (
    DbcDecoder,
    DbcMapping,
    DbcProblem,
    load_can_database,
    parse_can_database,
    repair_dbc,
)
from device_agent.errors import AgentError
from protocol.catalog import load_catalog

# A test dependency (the dev extras) on every Python it is released for (< 3.13).
opendbc = pytest.importorskip("opendbc", reason="opendbc is not released for this Python")
DBC_DIR = Path(opendbc.DBC_PATH)


def _opendbc_files() -> dict[str, str]:
    files = {path.stem: path.read_text(encoding="utf-8") for path in sorted(DBC_DIR.glob("*.dbc"))}
    files.update(opendbc.get_generated_dbcs())
    return files


FILES = _opendbc_files()
# Files that cannot be loaded at all, with the reason (each must fail); every opendbc file loads today.
UNLOADABLE: dict[str, str] = {}
CATALOG_NAMES = [spec.name for spec in load_catalog()]


@cache
def parsed(name: str) -> tuple[Database, tuple[DbcProblem, ...]]:
    database, problems = parse_can_database(FILES[name])
    return database, tuple(problems)


def raw_value(signal: Signal) -> int | float:
    """A raw value that fills the signal with alternating bits (1 at the top), or 1.5 for floats."""
    if signal.is_float:
        return 1.5
    ones = (1 << signal.length) - 1
    raw = ones - ones // 3
    return raw - (1 << signal.length) if signal.is_signed and raw >> (signal.length - 1) else raw


def decodes_back(database: Database, message: Message) -> None:
    """Each signal, encoded alone with cantools, comes out of DbcDecoder as raw * scale + offset."""
    signals = message.signals[:len(CATALOG_NAMES)]
    decoder = DbcDecoder(database, [DbcMapping(message.name, s.name, CATALOG_NAMES[i])
                                    for i, s in enumerate(signals)])
    for i, signal in enumerate(signals):
        values: dict[str, int | float] = {s.name: 0 for s in message.signals}
        values[signal.name] = raw_value(signal)
        frame = message.encode(values, scaling=False, strict=False)
        decoded = dict(decoder.decode(message.frame_id, frame, now=10.0 * i))
        expected = raw_value(signal) * signal.scale + signal.offset
        assert decoded[CATALOG_NAMES[i]] == pytest.approx(expected, rel=1e-9, abs=1e-6), (
            message.name, signal.name)


def well_formed(message: Message) -> bool:
    """Signals that neither overlap nor overrun the frame (cantools' strict check): only those
    messages can be encoded faithfully. Some real files have the others; they still decode."""
    try:
        message.refresh(strict=True)
    except CantoolsError:
        return False
    finally:
        message.refresh()
    return True


def sample(database: Database, problems: tuple[DbcProblem, ...]) -> list[Message]:
    """First, middle and last plain message by id, and every message a problem names."""
    plain = sorted((m for m in database.messages
                    if not m.is_multiplexed() and not m.is_container and well_formed(m)),
                   key=lambda m: m.frame_id)
    named = [m for m in plain if any(re.search(rf"\b{re.escape(m.name)}\b", p.what) for p in problems)]
    picks = [plain[0], plain[len(plain) // 2], plain[-1], *named] if plain else []
    return list({m.name: m for m in picks}.values())


def test_opendbc_ships_its_dbc_files():
    assert len(FILES) >= 90
    assert {"mazda_2017", "vw_meb", "toyota_2017_ref_pt", "honda_civic_touring_2016_can_generated",
            "tesla_can", "chrysler_ram_dt_generated"} <= set(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_opendbc_file_loads_and_its_messages_decode_back(name):
    if name in UNLOADABLE:
        with pytest.raises(AgentError):
            parse_can_database(FILES[name])
        return
    database, problems = parsed(name)
    messages = sample(database, problems)
    assert messages
    for message in messages:
        decodes_back(database, message)
    for message in database.messages:
        assert message.frame_id <= (0x1FFFFFFF if message.is_extended_frame else 0x7FF), message.name
    if not problems:
        assert repair_dbc(FILES[name]).text == FILES[name]  # a file without slips is read as it is


@pytest.mark.parametrize(("name", "line", "what"), [
    ("mazda_2017", 273, "message name 2017_5 starts with a digit"),
    ("psa_aee2010_r3", 165, "signal name 0_COUNTER starts with a digit"),
    ("vw_meb", None, "message MEB_Camera_04: id 0x12dd54a7 is wider than 11 bits but not marked extended"),
    ("toyota_2017_ref_pt", None, "message BDB1F01_14: id 0x40140639 is wider than 29 bits"),
    ("honda_civic_touring_2016_can_generated", 211, 'malformed comment dropped: CM_ SG_ 304 "Seems'),
    ("hyundai_kia_generic", 1656, 'malformed comment dropped: CM_ 145 "Contains signal'),
    ("toyota_radar_dsu_tssp", 138, """comment lacks its ';'; closed: CM_ "Front target\""""),
    ("tesla_can", None, "value table for 568 UI_mapSpeedLimit: no such signal UI_mapSpeedLimit; dropped"),
    ("mazda_2017", 790, "value table for 1143 LEFT_BS_STATUS lacks its ';'; closed"),
    ("chrysler_ram_dt_generated", 22, "number .25 lacks the 0 before the point; read as 0.25"),
])
def test_real_slips_are_named_with_their_line(name, line, what):
    _, problems = parsed(name)
    assert any(what in p.what and line in (None, p.line) for p in problems), problems


def test_a_file_with_slips_still_maps_and_names_what_is_missing():
    database, _ = parsed("mazda_2017")
    decoder = DbcDecoder(database, [DbcMapping("2017_5", database.get_message_by_name("2017_5")
                                               .signals[0].name, "speed")])
    assert decoder.frame_ids == {database.get_message_by_name("2017_5").frame_id}
    with pytest.raises(AgentError, match="no signal 'NOPE'"):
        DbcDecoder(database, [DbcMapping("2017_5", "NOPE", "speed")])
    toyota, _ = parsed("toyota_2017_ref_pt")
    with pytest.raises(AgentError, match="no message 'BDB1F01_14'"):
        DbcDecoder(toyota, [DbcMapping("BDB1F01_14", "X", "speed")])


def test_loading_a_file_logs_one_warning_per_problem_naming_file_and_line(caplog):
    path = DBC_DIR / "mazda_2017.dbc"
    with caplog.at_level(logging.WARNING, logger="device_agent.dbc"):
        load_can_database(path)
    lines = [r.getMessage() for r in caplog.records]
    assert f"DBC {path}:273: message name 2017_5 starts with a digit" in lines
    assert len(lines) == len(parsed("mazda_2017")[1])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="device_agent.dbc"):
        load_can_database(DBC_DIR / "toyota_prius_2010_pt.dbc")
    assert caplog.records == []


# Each slip on a small hand-written DBC.

HEAD = 'VERSION ""\n\nNS_ :\n\nBS_:\n\nBU_: ECU\n\n'
SPEED = 'BO_ 100 SPEED: 8 ECU\n SG_ SPEED : 7|16@0+ (0.01,0) [0|655.35] "km/h" ECU\n\n'


def dbc(*statements: str) -> str:
    return HEAD + SPEED + "\n".join(statements) + "\n"


def test_a_comment_on_no_message_or_signal_is_dropped_and_the_rest_kept():
    text = dbc('CM_ SG_ 100 "names no signal";', 'CM_ 100 "names no kind";', 'CM_ BO_ 100 "kept";')
    database, problems = parse_can_database(text)
    assert [(p.line, p.what) for p in problems] == [
        (12, 'malformed comment dropped: CM_ SG_ 100 "names no signal";'),
        (13, 'malformed comment dropped: CM_ 100 "names no kind";')]
    assert database.get_message_by_name("SPEED").comment == "kept"


def test_a_comment_without_its_semicolon_is_closed():
    text = HEAD + 'CM_ BO_ 100 "Front target"\n' + SPEED
    database, problems = parse_can_database(text)
    assert [(p.line, p.what) for p in problems] == [
        (9, """comment lacks its ';'; closed: CM_ BO_ 100 "Front target\"""")]
    assert database.get_message_by_name("SPEED").comment == "Front target"


def test_a_comment_spanning_lines_is_not_a_slip():
    text = dbc('CM_ BO_ 100 "first line\nBO_ 7 NOT_A_MESSAGE: 8 ECU\nlast line";')
    database, problems = parse_can_database(text)
    assert problems == [] and repair_dbc(text).text == text
    assert [m.name for m in database.messages] == ["SPEED"]


def test_a_value_table_for_no_signal_is_dropped():
    text = dbc('VAL_ 100 SPEED 0 "stopped" ;', 'VAL_ 100 GONE 1 "on" 0 "off" ;', 'VAL_ 555 X 1 "on" ;')
    database, problems = parse_can_database(text)
    assert [(p.line, p.what) for p in problems] == [
        (13, "value table for 100 GONE: no such signal GONE; dropped"),
        (14, "value table for 555 X: no such message; dropped")]
    assert database.get_message_by_name("SPEED").get_signal_by_name("SPEED").choices == {0: "stopped"}


def test_a_value_table_without_its_semicolon_is_closed():
    database, problems = parse_can_database(dbc('VAL_ 100 SPEED 1 "moving" 0 "stopped"'))
    assert [(p.line, p.what) for p in problems] == [(12, "value table for 100 SPEED lacks its ';'; closed")]
    assert database.get_message_by_name("SPEED").get_signal_by_name("SPEED").choices == {
        1: "moving", 0: "stopped"}


def test_a_29_bit_id_without_the_extended_flag_is_read_as_an_extended_frame():
    # 0x12DD54A7 fits no standard frame: python-can delivers it only with is_extended_id=True.
    with pytest.raises(ValueError):
        can.Message(arbitration_id=0x12DD54A7, is_extended_id=False, check=True)
    text = dbc('BO_ 316495015 CAMERA: 8 ECU\n SG_ LANE : 0|8@1+ (0.5,0) [0|127] "m" ECU\n',
               'CM_ BO_ 316495015 "camera status";', 'VAL_ 316495015 LANE 0 "none" ;',
               'BA_DEF_ BO_ "GenMsgCycleTime" INT 0 10000;', 'BA_DEF_DEF_ "GenMsgCycleTime" 0;',
               'BA_ "GenMsgCycleTime" BO_ 316495015 40;')
    database, problems = parse_can_database(text)
    assert [(p.line, p.what) for p in problems] == [
        (12, "message CAMERA: id 0x12dd54a7 is wider than 11 bits but not marked extended; "
             "read as extended")]
    camera = database.get_message_by_name("CAMERA")
    assert (camera.frame_id, camera.is_extended_frame) == (0x12DD54A7, True)
    assert (camera.comment, camera.cycle_time) == ("camera status", 40)
    assert camera.get_signal_by_name("LANE").choices == {0: "none"}
    frame = can.Message(arbitration_id=0x12DD54A7, is_extended_id=True, data=camera.encode({"LANE": 12.5}))
    decoder = DbcDecoder(database, [DbcMapping("CAMERA", "LANE", "speed")])
    assert decoder.decode(frame.arbitration_id, bytes(frame.data), now=0.0) == [("speed", 12.5)]


def test_an_id_wider_than_29_bits_drops_its_message_only():
    text = dbc('BO_ 1075054137 GATEWAY: 8 ECU\n SG_ DOOR : 0|1@1+ (1,0) [0|1] "" ECU\n',
               'VAL_ 1075054137 DOOR 1 "open" 0 "closed" ;')
    database, problems = parse_can_database(text)
    assert [(p.line, p.what) for p in problems] == [
        (12, "message GATEWAY: id 0x40140639 is wider than 29 bits, no CAN frame has it; message dropped")]
    assert [m.name for m in database.messages] == ["SPEED"]


def test_names_that_start_with_a_digit_keep_their_names():
    text = dbc('BO_ 200 2017_5: 8 ECU\n SG_ 0_MUX M : 0|8@1+ (1,0) [0|255] "" ECU\n'
               ' SG_ 5_SEC m1 : 8|8@1+ (2,0) [0|510] "s" ECU\n'
               ' SG_ D_5_SEC m1 : 16|8@1+ (1,0) [0|255] "" ECU\n',
               'CM_ SG_ 200 5_SEC "five seconds";', 'VAL_ 200 0_MUX 1 "one" ;')
    database, problems = parse_can_database(text)
    assert [(p.line, p.what) for p in problems] == [
        (12, "message name 2017_5 starts with a digit"), (13, "signal name 0_MUX starts with a digit"),
        (14, "signal name 5_SEC starts with a digit")]
    message = database.get_message_by_name("2017_5")
    assert {s.name for s in message.signals} == {"0_MUX", "5_SEC", "D_5_SEC"}
    assert message.get_signal_by_name("5_SEC").comment == "five seconds"
    assert message.get_signal_by_name("5_SEC").multiplexer_signal == "0_MUX"
    frame = message.encode({"0_MUX": 1, "5_SEC": 20, "D_5_SEC": 3})
    decoder = DbcDecoder(database, [DbcMapping("2017_5", "5_SEC", "speed")])
    assert decoder.decode(200, frame, now=0.0) == [("speed", 20.0)]


def test_a_number_without_the_zero_before_the_point_is_read():
    text = HEAD + 'BO_ 300 TORQUE: 8 ECU\n SG_ TORQ : 4|13@0+ (.25,-.5) [-.5|1547.5] "Nm" ECU\n'
    database, problems = parse_can_database(text)
    assert [(p.line, p.what) for p in problems] == [
        (10, "number .25 lacks the 0 before the point; read as 0.25"),
        (10, "number -.5 lacks the 0 before the point; read as -0.5"),
        (10, "number -.5 lacks the 0 before the point; read as -0.5")]
    torque = database.get_message_by_name("TORQUE").get_signal_by_name("TORQ")
    assert (torque.scale, torque.offset, torque.minimum) == (0.25, -0.5, -0.5)


def test_a_dbc_beyond_repair_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.dbc"
    path.write_text(HEAD + "BO_ 100 SPEED 8 ECU\n", encoding="utf-8")
    with pytest.raises(AgentError, match=r"cannot load DBC .*broken\.dbc.*line 9"):
        load_can_database(path)

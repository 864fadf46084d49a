import ast
import operator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.catalog import Privilege, ValueType, load_catalog

CATALOG = load_catalog()
DECODED = [s for s in CATALOG if s.obd is not None]


def vss_to_dimo_name(path: str) -> str:
    """DIMO's rule: drop 'Vehicle.', lower the first segment (all of it if an acronym), join."""
    first, *rest = path.split(".")[1:]
    first = first.lower() if first.isupper() else first[0].lower() + first[1:]
    return first + "".join(rest)


def test_catalog_holds_at_least_dimos_116_names():
    assert len(CATALOG) >= 116
    for name in ("speed", "powertrainTransmissionTravelledDistance",
                 "powertrainCombustionEngineSpeed", "powertrainTractionBatteryStateOfChargeCurrent",
                 "currentLocationCoordinates", "obdDTCList", "dimoAftermarketHDOP",
                 "chassisAxleRow1WheelLeftTirePressure", "obdO2WRSensor1Voltage"):
        assert name in CATALOG, name


@pytest.mark.parametrize("spec", list(CATALOG), ids=lambda s: s.name)
def test_every_name_is_the_dimo_camel_case_of_its_vss_path(spec):
    assert spec.name == vss_to_dimo_name(spec.vss)


def test_location_privilege_is_exactly_the_current_location_branch():
    located = {s.name for s in CATALOG if s.privilege is Privilege.LOCATION}
    assert located == {s.name for s in CATALOG if s.vss.startswith("Vehicle.CurrentLocation.")}
    assert "currentLocationCoordinates" in located


def test_numeric_signals_have_a_range_and_others_a_wire_type():
    for spec in CATALOG:
        if spec.type is ValueType.FLOAT:
            assert spec.min is not None and spec.max is not None and spec.min < spec.max, spec.name
        else:
            assert spec.min is None and spec.max is None, spec.name
    assert CATALOG["currentLocationCoordinates"].type is ValueType.LOCATION
    assert CATALOG["obdDTCList"].type is ValueType.STRING


@pytest.mark.parametrize(("name", "data", "expected"), [
    ("powertrainCombustionEngineSpeed", "1AF8", 1726.0),   # SAE J1979 example: 0x1AF8 / 4
    ("powertrainCombustionEngineECT", "7B", 83.0),          # 123 - 40
    ("speed", "3C", 60.0),
    ("powertrainTransmissionTravelledDistance", "0001E240", 12345.6),
    ("obdStatusDTCCount", "83", 3.0),                        # MIL bit masked off
    ("obdShortTermFuelTrim1", "80", 0.0),
    ("lowVoltageBatteryCurrentVoltage", "3A98", 15.0),
])
def test_known_pid_decodings(name, data, expected):
    obd = CATALOG[name].obd
    assert obd is not None
    assert obd.decode(bytes.fromhex(data)) == pytest.approx(expected)


def test_short_pid_reply_is_an_error():
    obd = CATALOG["powertrainCombustionEngineSpeed"].obd
    assert obd is not None
    with pytest.raises(ValueError, match="needs 2 data bytes"):
        obd.decode(b"\x1a")


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.Pow: operator.pow,
        ast.BitAnd: lambda a, b: float(int(a) & int(b))}


def evaluate_j1979_formula(formula: str, data: bytes) -> float:
    """Evaluate J1979 notation (A, B, C, D, + - * / & and ^ as power) on data bytes."""
    variables = dict(zip("ABCD", data, strict=False))

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant):
            return float(node.value)  # type: ignore[arg-type]
        if isinstance(node, ast.Name):
            return float(variables[node.id])
        raise ValueError(ast.dump(node))

    return walk(ast.parse(formula.replace("^", "**"), mode="eval").body)


@pytest.mark.parametrize("spec", DECODED, ids=lambda s: s.name)
@given(data=st.binary(min_size=4, max_size=4))
def test_pid_decoding_agrees_with_its_documented_formula(spec, data):
    assert spec.obd.decode(data) == pytest.approx(evaluate_j1979_formula(spec.obd.formula, data))


@pytest.mark.parametrize("spec", DECODED, ids=lambda s: s.name)
def test_the_lowest_decodable_pid_value_is_within_the_plausible_range(spec):
    lowest = spec.obd.decode(bytes(4))
    assert spec.in_range(lowest), f"{spec.name}: decoded minimum {lowest} outside the range"


def test_pids_are_unique():
    pids = [s.obd.pid for s in DECODED if s.obd is not None]
    assert len(pids) == len(set(pids))

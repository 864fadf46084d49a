"""Passive decoding of a car's own broadcast CAN frames with a DBC file (cantools), mapped to
catalog names by config. Pure: frames in, readings out; the rate limit takes the time given.

Real DBC files (opendbc's among them) are not all DBC that cantools reads, even non-strict.
``repair_dbc`` mends or drops what cantools refuses and says what it did, one problem per line;
it keeps the file's line numbering, so cantools' own errors still point at the right line."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cantools
from cantools.database.can import Database

from device_agent.errors import AgentError
from protocol.catalog import load_catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DbcMapping:
    """DBC ``message``.``signal`` becomes catalog signal ``name`` as value * scale + offset
    (for units: a DBC in mph feeds ``speed`` in km/h with scale 1.609344)."""

    message: str
    signal: str
    name: str
    scale: float = 1.0
    offset: float = 0.0
    rate_hz: float = 1.0


@dataclass(frozen=True, slots=True)
class DbcProblem:
    """Something in a DBC text that cantools refuses, at ``line`` (1-based), and what was done."""

    line: int
    what: str


@dataclass(frozen=True, slots=True)
class RepairedDbc:
    text: str
    problems: list[DbcProblem]
    #: stand-in -> real name, for message and signal names that start with a digit
    renamed: dict[str, str]


@dataclass(slots=True)
class _Messages:
    """What the BO_ and SG_ lines of a DBC text define, by DBC id (bit 31: extended)."""

    signals: dict[int, set[str]]
    dropped: set[int]  # ids no CAN frame has
    widened: set[int]  # standard ids wider than 11 bits
    digit_names: set[str]  # message and signal names that start with a digit


# cantools' WORD token. Names are C identifiers (Vector, "DBC File Format Documentation",
# 01/2007, General Definitions); a leading digit lexes as a NUMBER.
_NAME = r"[A-Za-z0-9_]+"
_STRING = r'"(?:\\.|[^"\\])*"'
# CM_ [BU_ node | BO_ id | SG_ id signal | EV_ variable] "text";
_COMMENT = re.compile(rf"CM_\s+(?:(?:BU_|EV_|SG_\s+\d+)\s+{_NAME}\s+|BO_\s+\d+\s+)?{_STRING}\s*;")
# Any comment statement (its head on one line), or a string skipped whole.
_COMMENT_OR_STRING = re.compile(rf'(?P<comment>^CM_\b[^";\n]*(?:{_STRING})?(?:\s*;)?)|{_STRING}', re.M)
_MESSAGE = re.compile(rf"\s*BO_\s+(\d+)\s+({_NAME})\s*:")
_SIGNAL = re.compile(rf"\s*SG_\s+({_NAME})")
# VAL_ id signal value "text" ... ; with ``open`` set when the line ends before the ';'.
_VALUES = re.compile(rf"^VAL_\s+(\d+)\s+({_NAME})(?:\s+[-+]?[\d.]+\s+{_STRING})*(?:\s*;|(?P<open>[ \t\r]*$))",
                     re.M)
# Statements that name a message by its DBC id: BO_ 123, CM_ SG_ 123, VAL_ 123, BA_ "x" BO_ 123 ...
_ID_REFERENCE = re.compile(
    r"\b(?P<keyword>BO_|SG_|VAL_|BO_TX_BU_|SIG_VALTYPE_|SG_MUL_VAL_|SIG_GROUP_)(?P<space>\s+)(?P<id>\d+)\b")
_BARE_FRACTION = re.compile(r"(?<![\w.])(?P<sign>[-+]?)(?P<point>\.)(?P<digits>\d+)")  # .25 for 0.25

_EXTENDED = 0x80000000  # bit 31 of a DBC id marks an extended (29-bit) frame (ibid., Message Definitions)
_STANDARD_MAX = 0x7FF
_EXTENDED_MAX = 0x1FFFFFFF
# Vector's holder of signals that belong to no frame; cantools skips it by this name.
_NO_FRAME = "VECTOR__INDEPENDENT_SIG_MSG"


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _blank(statement: str) -> str:
    """A dropped statement leaves its newlines, so later line numbers stay true."""
    return "\n" * statement.count("\n")


def _drop_bad_comments(text: str, problems: list[DbcProblem]) -> str:
    def mend(match: re.Match[str]) -> str:
        statement = match.group("comment")
        if statement is None or _COMMENT.fullmatch(statement):
            return match.group()
        line, head = _line_of(text, match.start()), " ".join(statement.split())[:70]
        if _COMMENT.fullmatch(statement + ";"):
            problems.append(DbcProblem(line, f"comment lacks its ';'; closed: {head}"))
            return statement + ";"
        problems.append(DbcProblem(line, f"malformed comment dropped: {head}"))
        return _blank(statement)

    return _COMMENT_OR_STRING.sub(mend, text)


def _mend_messages(text: str, problems: list[DbcProblem]) -> tuple[str, _Messages]:
    """Messages whose id no CAN frame has dropped with their signals; standard ids wider than
    11 bits and names that start with a digit found."""
    lines = text.split("\n")
    found = _Messages({}, set(), set(), set())
    signals, dropped, widened, digit_names = found.signals, found.dropped, found.widened, found.digit_names
    current: int | None = None
    for number, line in enumerate(lines, start=1):
        if message := _MESSAGE.match(line):
            dbc_id, name = int(message.group(1)), message.group(2)
            frame_id = dbc_id & ~_EXTENDED
            current = dbc_id
            if name == _NO_FRAME:
                continue
            if frame_id > _EXTENDED_MAX:
                problems.append(DbcProblem(number, f"message {name}: id 0x{frame_id:x} is wider than "
                                                   "29 bits, no CAN frame has it; message dropped"))
                dropped.add(dbc_id)
                lines[number - 1] = ""
                continue
            if not dbc_id & _EXTENDED and frame_id > _STANDARD_MAX:
                problems.append(DbcProblem(number, f"message {name}: id 0x{frame_id:x} is wider than "
                                                   "11 bits but not marked extended; read as extended"))
                widened.add(dbc_id)
            signals[dbc_id] = set()
            if name[0].isdigit():
                problems.append(DbcProblem(number, f"message name {name} starts with a digit"))
                digit_names.add(name)
        elif current is not None and (signal := _SIGNAL.match(line)):
            if current in dropped:
                lines[number - 1] = ""
                continue
            name = signal.group(1)
            signals.setdefault(current, set()).add(name)
            if name[0].isdigit():
                problems.append(DbcProblem(number, f"signal name {name} starts with a digit"))
                digit_names.add(name)
        elif line.strip():
            current = None
    return "\n".join(lines), found


def _mend_values(text: str, found: _Messages, problems: list[DbcProblem]) -> str:
    """VAL_ for a message or signal the file does not define (cantools refuses them) dropped,
    silently for a message dropped already; VAL_ without its closing ';' closed."""
    def mend(match: re.Match[str]) -> str:
        dbc_id, name = int(match.group(1)), match.group(2)
        if name in found.signals.get(dbc_id, ()):
            if match.group("open") is None:
                return match.group()
            problems.append(DbcProblem(_line_of(text, match.start()),
                                       f"value table for {dbc_id} {name} lacks its ';'; closed"))
            return match.group() + ";"
        if dbc_id not in found.dropped:
            missing = f"signal {name}" if dbc_id in found.signals else "message"
            problems.append(DbcProblem(_line_of(text, match.start()),
                                       f"value table for {dbc_id} {name}: no such {missing}; dropped"))
        return _blank(match.group())

    return _VALUES.sub(mend, text)


def _stand_ins(text: str, names: set[str]) -> dict[str, str]:
    """A name cantools reads for each that starts with a digit, clashing with no word in the text."""
    words = set(re.findall(_NAME, text)) if names else set()
    stand_in = {}
    for name in sorted(names):
        prefix = "D_"
        while prefix + name in words:
            prefix += "_"
        stand_in[name] = prefix + name
    return stand_in


def _mend_code(text: str, widened: set[int], stand_in: dict[str, str], problems: list[DbcProblem]) -> str:
    """Outside string literals: widened ids flagged extended wherever they are named, names
    swapped for their stand-ins, fractions given their leading 0."""
    if not widened and not stand_in and _BARE_FRACTION.search(text) is None:
        return text
    alternatives = [rf"(?P<string>{_STRING})", _BARE_FRACTION.pattern]
    if widened:
        alternatives.append(_ID_REFERENCE.pattern)
    if stand_in:
        alternatives.append(rf"\b(?P<name>{'|'.join(map(re.escape, stand_in))})\b")

    def mend(match: re.Match[str]) -> str:
        if match.group("string") is not None:
            return match.group()
        if match.group("point") is not None:
            mended = f"{match.group('sign')}0.{match.group('digits')}"
            problems.append(DbcProblem(_line_of(text, match.start()), f"number {match.group()} "
                                       f"lacks the 0 before the point; read as {mended}"))
            return mended
        if widened and match.group("id") is not None:
            dbc_id = int(match.group("id"))
            return match.group("keyword") + match.group("space") + str(
                dbc_id | _EXTENDED if dbc_id in widened else dbc_id)
        return stand_in[match.group("name")]

    return re.sub("|".join(alternatives), mend, text)


def repair_dbc(text: str) -> RepairedDbc:
    """The slips that real DBC files make and cantools refuses, mended or dropped: malformed
    comments; value tables of signals that do not exist; ids with no CAN frame; standard ids
    wider than 11 bits (a 29-bit id without the extended flag, bit 31); names that start with
    a digit; numbers without the zero before the point. Pure."""
    problems: list[DbcProblem] = []
    text = _drop_bad_comments(text, problems)
    text, found = _mend_messages(text, problems)
    text = _mend_values(text, found, problems)
    stand_in = _stand_ins(text, found.digit_names)
    text = _mend_code(text, found.widened, stand_in, problems)
    problems.sort(key=lambda p: p.line)
    return RepairedDbc(text, problems, {v: k for k, v in stand_in.items()})


def parse_can_database(text: str) -> tuple[Database, list[DbcProblem]]:
    """A DBC text as cantools reads it (non-strict) once ``repair_dbc`` has mended it, with the
    problems found. Raises AgentError for what is beyond repair."""
    repaired = repair_dbc(text)
    try:
        database = cantools.database.load_string(repaired.text, database_format="dbc", strict=False)
    except (cantools.database.errors.Error, ValueError) as exc:
        raise AgentError(str(exc)) from exc
    if not isinstance(database, Database):
        raise AgentError("not a CAN database")
    if repaired.renamed:
        real = repaired.renamed
        for message in database.messages:
            message.name = real.get(message.name, message.name)
            for signal in message.signals:
                signal.name = real.get(signal.name, signal.name)
                if signal.multiplexer_signal is not None:
                    signal.multiplexer_signal = real.get(signal.multiplexer_signal, signal.multiplexer_signal)
        database.refresh()
    return database, repaired.problems


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return path.read_text(encoding="cp1252", errors="replace")  # as Vector's tools write


def load_can_database(path: Path) -> Database:
    """A DBC file, mended where real-world files slip (see ``repair_dbc``); each problem is
    logged as a warning naming the file and line."""
    try:
        database, problems = parse_can_database(_read_text(path))
    except (OSError, AgentError) as exc:
        raise AgentError(f"cannot load DBC {path}: {exc}") from exc
    for problem in problems:
        log.warning("DBC %s:%d: %s", path, problem.line, problem.what)
    return database


class DbcDecoder:
    def __init__(self, database: Database, mappings: Iterable[DbcMapping]) -> None:
        catalog = load_catalog()
        self.database = database
        self._by_frame: dict[int, list[DbcMapping]] = {}
        for mapping in mappings:
            if mapping.name not in catalog:
                raise AgentError(f"DBC mapping to {mapping.name!r}: not a catalog signal")
            try:
                message = database.get_message_by_name(mapping.message)
            except KeyError:
                raise AgentError(f"DBC has no message {mapping.message!r}") from None
            if mapping.signal not in {s.name for s in message.signals}:
                raise AgentError(f"DBC message {mapping.message} has no signal {mapping.signal!r}")
            self._by_frame.setdefault(message.frame_id, []).append(mapping)
        self._next_due: dict[str, float] = {}

    @classmethod
    def from_file(cls, path: Path, mappings: Iterable[DbcMapping]) -> DbcDecoder:
        return cls(load_can_database(path), mappings)

    @property
    def frame_ids(self) -> set[int]:
        return set(self._by_frame)

    def decode(self, frame_id: int, data: bytes, now: float) -> list[tuple[str, float]]:
        """Catalog (name, value) pairs due at ``now`` from one frame; frames not mapped, or
        arriving before a signal's next due time, give nothing. ``frame_id`` is python-can's
        ``arbitration_id``: 11 or 29 bits, without the DBC's extended flag."""
        mappings = self._by_frame.get(frame_id)
        if not mappings:
            return []
        due = [m for m in mappings if now >= self._next_due.get(m.name, 0.0)]
        if not due:
            return []
        try:
            decoded = self.database.decode_message(frame_id, data, decode_choices=False)
        except (ValueError, KeyError, cantools.database.errors.Error):
            return []  # short or corrupt frame: skip it, the next one will do
        if not isinstance(decoded, dict):
            return []
        out = []
        for mapping in due:
            raw = decoded.get(mapping.signal)
            if isinstance(raw, int | float):
                out.append((mapping.name, round(float(raw) * mapping.scale + mapping.offset, 6)))
                self._next_due[mapping.name] = now + 1.0 / mapping.rate_hz
        return out

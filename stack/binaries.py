"""Finding the PostgreSQL and Mosquitto executables on this machine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from stack.errors import MissingBinary

PG_TOOLS = ("initdb", "pg_ctl", "postgres")


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)


def find_pg_bindir() -> Path:
    """A directory holding initdb, pg_ctl and postgres: the newest Debian one, else PATH's."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in PG_TOOLS):
            return bindir
    raise MissingBinary(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; run scripts/setup.sh "
        "or install the 'postgresql' package"
    )


def find_mosquitto() -> Path:
    found = shutil.which("mosquitto") or next(
        (str(p) for p in (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto"))
         if p.is_file()),
        None,
    )
    if not found:
        raise MissingBinary("mosquitto not found; run scripts/setup.sh or install 'mosquitto'")
    return Path(found)


def find_dynsec_plugin() -> Path:
    """Mosquitto's dynamic security plugin (shipped in Debian's 'mosquitto' package)."""
    for pattern in ("usr/lib/*/mosquitto_dynamic_security.so", "usr/lib/mosquitto_dynamic_security.so",
                    "usr/local/lib/mosquitto_dynamic_security.so"):
        found = sorted(Path("/").glob(pattern))
        if found:
            return found[0]
    raise MissingBinary(
        "mosquitto_dynamic_security.so not found; run scripts/setup.sh or install 'mosquitto' 2.x"
    )


def timescaledb_control(bindir: Path) -> Path:
    """Where the server in ``bindir`` looks for TimescaleDB's control file (its sharedir)."""
    pg_config = bindir / "pg_config"
    sharedir = None
    if pg_config.is_file():
        result = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True,
                                check=False)
        sharedir = result.stdout.strip() if result.returncode == 0 else None
    if not sharedir:  # Debian's layout: /usr/lib/postgresql/15/bin -> /usr/share/postgresql/15
        sharedir = f"/usr/share/postgresql/{bindir.parent.name}"
    return Path(sharedir) / "extension" / "timescaledb.control"


def check_timescaledb(bindir: Path) -> None:
    """MissingBinary (saying how to build it) unless the server in ``bindir`` has TimescaleDB."""
    control = timescaledb_control(bindir)
    if not control.is_file():
        raise MissingBinary(
            f"TimescaleDB is not installed for the PostgreSQL in {bindir} (no {control}); "
            "scripts/timescaledb.sh builds it from ../shared/timescaledb, or install Timescale's "
            "own package (docs/operations.md)"
        )

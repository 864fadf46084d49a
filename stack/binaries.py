"""Finding the PostgreSQL and Mosquitto executables on this machine."""

from __future__ import annotations

import re
import shutil
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

"""A throwaway local stack: real Mosquitto and a real PostgreSQL cluster on free ports.

Used by `motus stack ...`, the demo and the test fixtures alike. Everything lives under one
directory (``.motus/`` by default): the cluster, the broker's config, data and logs, and
``stack.json`` with the ports. PostgreSQL refuses to run as root, so under root both servers run
as an unprivileged service account (``postgres`` when it exists, else ``nobody``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

import broker_config
from motus.binaries import StackError, find_mosquitto, find_pg_bindir

DATABASE = "motus"
SUPERUSER = "motus"
STATE_FILE = "stack.json"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class StackInfo:
    dir: str
    pg_port: int
    mqtt_port: int
    mosquitto_pid: int
    timescaledb: bool

    @property
    def database_url(self) -> str:
        return self.database_url_for(DATABASE)

    def database_url_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.pg_port}/{database}"

    @property
    def mqtt_host(self) -> str:
        return "127.0.0.1"

    def env(self) -> dict[str, str]:
        """The settings every Motus service reads (MOTUS_ prefix), pointing at this stack."""
        return {
            "MOTUS_DATABASE_URL": self.database_url,
            "MOTUS_MQTT_HOST": self.mqtt_host,
            "MOTUS_MQTT_PORT": str(self.mqtt_port),
        }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _service_account() -> pwd.struct_passwd | None:
    """None when we are not root; otherwise the account the servers run as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise StackError("running as root but neither a 'postgres' nor a 'nobody' account exists")


def _pid_alive(pid: int, expected_name: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return expected_name.encode() in cmdline


class LocalStack:
    """Start, inspect and stop the stack living in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.account = _service_account()

    # paths
    @property
    def pg_data(self) -> Path:
        return self.root / "postgres" / "data"

    @property
    def pg_log(self) -> Path:
        return self.root / "postgres" / "postgres.log"

    @property
    def mqtt_dir(self) -> Path:
        return self.root / "mosquitto"

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    # public API
    def read_state(self) -> StackInfo | None:
        try:
            return StackInfo(**json.loads(self.state_path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise StackError(f"{self.state_path} is unreadable: {exc}") from exc

    def status(self) -> dict[str, bool]:
        info = self.read_state()
        mosquitto = info is not None and (
            _pid_alive(info.mosquitto_pid, "mosquitto") and _port_open(info.mqtt_port)
        )
        return {"postgres": self._pg_running(), "mosquitto": mosquitto}

    def up(self) -> StackInfo:
        """Start whatever is not running; return the connection settings."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StackError(f"cannot create the stack directory {self.root}: {exc}") from exc
        self._check_traversable()
        previous = self.read_state()
        running = self.status()
        if running["postgres"]:
            pg_port = self._running_pg_port()
        else:
            pg_port = free_port()
            self._start_postgres(pg_port)
        timescaledb = self._ensure_database(pg_port)
        if previous and running["mosquitto"]:
            mqtt_port, mosquitto_pid = previous.mqtt_port, previous.mosquitto_pid
        else:
            mqtt_port = free_port()
            mosquitto_pid = self._start_mosquitto(mqtt_port)
        info = StackInfo(str(self.root), pg_port, mqtt_port, mosquitto_pid, timescaledb)
        self.state_path.write_text(json.dumps(asdict(info), indent=2) + "\n")
        return info

    def down(self) -> None:
        info = self.read_state()
        if info is not None and _pid_alive(info.mosquitto_pid, "mosquitto"):
            os.kill(info.mosquitto_pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _pid_alive(info.mosquitto_pid, "mosquitto") and time.monotonic() < deadline:
                time.sleep(0.05)
        if self._pg_running():
            self._run_pg("pg_ctl", "-D", str(self.pg_data), "-m", "fast", "-w", "stop")
        self.state_path.unlink(missing_ok=True)

    def destroy(self) -> None:
        """Stop everything and delete the directory."""
        self.down()
        shutil.rmtree(self.root, ignore_errors=True)

    # PostgreSQL
    def _run_pg(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(find_pg_bindir() / tool), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, **self._as_account()
        )
        if result.returncode != 0:
            raise StackError(
                f"{tool} failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
                + self._log_tail(self.pg_log)
            )
        return result

    def _pg_running(self) -> bool:
        if not (self.pg_data / "PG_VERSION").exists():
            return False
        command = [str(find_pg_bindir() / "pg_ctl"), "-D", str(self.pg_data), "status"]
        result = subprocess.run(command, capture_output=True, check=False, **self._as_account())
        return result.returncode == 0

    def _running_pg_port(self) -> int:
        # postmaster.pid: line 4 is the port (PostgreSQL docs, "Database File Layout").
        lines = (self.pg_data / "postmaster.pid").read_text().splitlines()
        return int(lines[3])

    def _start_postgres(self, port: int) -> None:
        if not (self.pg_data / "PG_VERSION").exists():
            self._make_dir(self.pg_data.parent)
            self._run_pg(
                "initdb", "-D", str(self.pg_data), "-U", SUPERUSER, "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-instructions",
            )
            with (self.pg_data / "postgresql.conf").open("a") as conf:
                conf.write("\ninclude_if_exists = 'motus.conf'\n")
        self._write_pg_settings(port, preload_timescaledb=False)
        self._run_pg("pg_ctl", "-D", str(self.pg_data), "-l", str(self.pg_log),
                     "-w", "-t", str(int(START_TIMEOUT_S)), "start")

    def _write_pg_settings(self, port: int, *, preload_timescaledb: bool) -> None:
        settings = {
            "port": str(port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.pg_data.parent}'",
            "max_connections": "200",
            "timezone": "'UTC'",
            # A throwaway cluster: crash safety against the OS is not worth the fsyncs.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        if preload_timescaledb:
            settings["shared_preload_libraries"] = "'timescaledb'"
            settings["timescaledb.telemetry_level"] = "off"
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        path = self.pg_data / "motus.conf"
        path.write_text(text)
        self._chown(path)

    def _ensure_database(self, port: int) -> bool:
        """Create the motus database; load TimescaleDB's library when the server has it."""
        admin = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            available = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
            ).fetchone()
            preloaded = conn.execute("SHOW shared_preload_libraries").fetchone()
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        if available and preloaded and "timescaledb" not in preloaded[0]:
            self._write_pg_settings(port, preload_timescaledb=True)
            self._run_pg("pg_ctl", "-D", str(self.pg_data), "-w", "restart",
                         "-l", str(self.pg_log))
        return bool(available)

    # Mosquitto
    def _start_mosquitto(self, port: int) -> int:
        self._make_dir(self.mqtt_dir / "data")
        conf = self.mqtt_dir / "mosquitto.conf"
        log_file = self.mqtt_dir / "mosquitto.log"
        conf.write_text(broker_config.render(
            "mosquitto.local.conf.tmpl",
            port=port, data_dir=self.mqtt_dir / "data", log_file=log_file,
        ))
        for path in (conf, log_file):
            path.touch()
            self._chown(path)
        with (self.mqtt_dir / "stdout.log").open("ab") as out:
            process = subprocess.Popen(
                [str(find_mosquitto()), "-c", str(conf)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, **self._as_account(),
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise StackError("mosquitto did not start" + self._log_tail(log_file))
            time.sleep(0.02)
        return process.pid

    # helpers
    def _as_account(self) -> dict[str, Any]:
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if self.account is not None:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def _make_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for part in [path, *path.parents]:
            if part == self.root.parent:
                break
            self._chown(part)

    def _check_traversable(self) -> None:
        if self.account is None:
            return
        for part in [self.root, *self.root.parents]:
            if part != self.root and not part.stat().st_mode & 0o001:
                raise StackError(
                    f"the service account {self.account.pw_name!r} cannot enter {part}; "
                    "put the stack elsewhere with --dir (for example under /tmp)"
                )
        self._chown(self.root)

    @staticmethod
    def _log_tail(path: Path, lines: int = 15) -> str:
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- " + str(path) + " ---\n" + "\n".join(tail)

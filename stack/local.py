"""A throwaway local stack: real Mosquitto and a real PostgreSQL cluster on free ports.

Used by `motus stack ...`, the demo and the test fixtures alike. Everything lives under one
directory (``.motus/`` by default): the cluster, the broker's config, identities, development
certificates, data and logs, and ``stack.json`` (mode 0600) with the ports and the service
passwords. The broker runs the same configuration as production (broker_config/), every
listener on loopback. PostgreSQL refuses to run as root, so under root both servers run as an
unprivileged service account (``postgres`` when it exists, else ``nobody``).
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

from broker_config import BrokerLayout, dynsec, render_mosquitto_conf
from broker_config.admin import BrokerAdmin
from broker_config.tls import ensure_dev_pki
from protocol.endpoint import MqttEndpoint
from stack.binaries import check_timescaledb, find_dynsec_plugin, find_mosquitto, find_pg_bindir
from stack.errors import StackError

DATABASE = "motus"
SUPERUSER = "motus"
STATE_FILE = "stack.json"
START_TIMEOUT_S = 30.0


MQTT_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class StackInfo:
    dir: str
    pg_port: int
    #: The services' listener (plain MQTT); devices use the TLS or WebSocket one.
    mqtt_port: int
    mqtt_tls_port: int
    mqtt_ws_port: int
    mosquitto_pid: int
    timescaledb: bool
    admin_password: str
    ingest_password: str

    @property
    def database_url(self) -> str:
        return self.database_url_for(DATABASE)

    def database_url_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.pg_port}/{database}"

    @property
    def mqtt_host(self) -> str:
        return MQTT_HOST

    @property
    def ca_file(self) -> Path:
        """The development CA that signed the broker's certificate."""
        return Path(self.dir) / "tls" / "ca.crt"

    @property
    def admin_endpoint(self) -> MqttEndpoint:
        return MqttEndpoint(host=MQTT_HOST, port=self.mqtt_port,
                            username=dynsec.ADMIN_USERNAME, password=self.admin_password)

    @property
    def ingest_endpoint(self) -> MqttEndpoint:
        return MqttEndpoint(host=MQTT_HOST, port=self.mqtt_port,
                            username=dynsec.INGEST_USERNAME, password=self.ingest_password)

    def device_endpoint(self, username: str, password: str, *, tls: bool = True,
                        websockets: bool = False) -> MqttEndpoint:
        """Where a device connects: TLS by default, or the WebSocket listener, or (``tls=False``)
        the loopback service listener, which the simulators use to skip TLS overhead."""
        port = self.mqtt_ws_port if websockets else self.mqtt_tls_port if tls else self.mqtt_port
        secure = tls or websockets
        return MqttEndpoint(host=MQTT_HOST, port=port, username=username, password=password,
                            transport="websockets" if websockets else "tcp", tls=secure,
                            ca_file=self.ca_file if secure else None)

    def env(self) -> dict[str, str]:
        """The settings every Motus service reads (MOTUS_ prefix), pointing at this stack."""
        return {
            "MOTUS_DATABASE_URL": self.database_url,
            "MOTUS_MQTT_HOST": self.mqtt_host,
            "MOTUS_MQTT_PORT": str(self.mqtt_port),
            "MOTUS_MQTT_USERNAME": dynsec.INGEST_USERNAME,
            "MOTUS_MQTT_PASSWORD": self.ingest_password,
            "MOTUS_BROKER_ADMIN_USERNAME": dynsec.ADMIN_USERNAME,
            "MOTUS_BROKER_ADMIN_PASSWORD": self.admin_password,
            "MOTUS_DEVICE_MQTT_HOST": self.mqtt_host,
            "MOTUS_DEVICE_MQTT_PORT": str(self.mqtt_tls_port),
            "MOTUS_DEVICE_MQTT_TLS": "true",
            "MOTUS_DEVICE_MQTT_CA_FILE": str(self.ca_file),
            # The network's signing key of this stack (receipts, payout roots), kept beside it.
            "MOTUS_NETWORK_KEY_FILE": str(Path(self.dir) / "network.key"),
        }


def _sync_service_roles(info: StackInfo) -> None:
    """Give a broker made by an earlier release the service ACLs of this one (idempotent)."""
    with BrokerAdmin(info.admin_endpoint) as admin:
        admin.execute(dynsec.ingest_acl_commands())


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

    def __init__(self, root: Path, *, timescaledb: bool | None = None) -> None:
        """``timescaledb``: the path a new cluster takes (True: TimescaleDB, False: plain
        PostgreSQL partitions); None: the path the cluster in ``root`` was made on, plain for a
        new one. A cluster keeps its path: asking an existing one for the other is an error."""
        self.root = root.resolve()
        self.account = _service_account()
        self.requested_timescaledb = timescaledb

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

    @property
    def path_file(self) -> Path:
        """Which path the cluster was made on: 'timescaledb' or 'plain' (kept with the data)."""
        return self.root / "postgres" / "path"

    def timescaledb(self) -> bool:
        """The cluster's path: recorded when it was made, else the one asked for."""
        recorded = self.path_file.read_text().strip() if self.path_file.exists() else None
        wanted = self.requested_timescaledb
        if recorded is None:
            return bool(wanted)
        if wanted is not None and wanted != (recorded == "timescaledb"):
            raise StackError(f"the stack in {self.root} was made on the {recorded} path; use another "
                             f"--dir for the {'timescaledb' if wanted else 'plain'} path")
        return recorded == "timescaledb"

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
            and _port_open(info.mqtt_tls_port) and _port_open(info.mqtt_ws_port)
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
        admin, ingest = self._service_credentials()
        if previous and running["mosquitto"]:
            ports = (previous.mqtt_port, previous.mqtt_tls_port, previous.mqtt_ws_port)
            mosquitto_pid = previous.mosquitto_pid
        else:
            ports = (free_port(), free_port(), free_port())
            mosquitto_pid = self._start_mosquitto(*ports)
        info = StackInfo(str(self.root), pg_port, *ports, mosquitto_pid=mosquitto_pid,
                         timescaledb=timescaledb, admin_password=admin.password,
                         ingest_password=ingest.password)
        self._write_state(info)
        if not (previous and running["mosquitto"]):
            _sync_service_roles(info)
        return info

    def _write_state(self, info: StackInfo) -> None:
        fd = os.open(self.state_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(asdict(info), indent=2) + "\n")

    def restart_mosquitto(self, how: signal.Signals = signal.SIGTERM, *, pause_s: float = 0.0,
                          forget_persistence: bool = False) -> StackInfo:
        """Stop the broker with ``how`` (SIGTERM: it saves its sessions first; SIGKILL: a crash),
        wait ``pause_s``, optionally delete its persistence file (a lost disk), and start it
        again on the same ports: a fault drill for the services and devices using the stack."""
        info = self.read_state()
        if info is None:
            raise StackError(f"no stack is running in {self.root}")
        if _pid_alive(info.mosquitto_pid, "mosquitto"):
            os.kill(info.mosquitto_pid, how)
            deadline = time.monotonic() + 10
            while _pid_alive(info.mosquitto_pid, "mosquitto") and time.monotonic() < deadline:
                time.sleep(0.02)
            with contextlib.suppress(ChildProcessError):  # reap it when it was our child
                os.waitpid(info.mosquitto_pid, os.WNOHANG)
        time.sleep(pause_s)
        if forget_persistence:
            (self.mqtt_dir / "data" / "mosquitto.db").unlink(missing_ok=True)
        pid = self._start_mosquitto(info.mqtt_port, info.mqtt_tls_port, info.mqtt_ws_port)
        restarted = StackInfo(**{**asdict(info), "mosquitto_pid": pid})
        self._write_state(restarted)
        return restarted

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

    def restart_postgres(self, pause_s: float = 0.0) -> None:
        """Stop PostgreSQL (fast shutdown: sessions are cut), wait, start it on the same port:
        a failover drill for the services using the stack."""
        port = self._running_pg_port()
        self._run_pg("pg_ctl", "-D", str(self.pg_data), "-m", "fast", "-w", "stop")
        time.sleep(pause_s)
        self._start_postgres(port)

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
        timescaledb = self.timescaledb()
        if timescaledb:
            check_timescaledb(find_pg_bindir())
        if not (self.pg_data / "PG_VERSION").exists():
            self._make_dir(self.pg_data.parent)
            self._run_pg(
                "initdb", "-D", str(self.pg_data), "-U", SUPERUSER, "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-instructions",
            )
            with (self.pg_data / "postgresql.conf").open("a") as conf:
                conf.write("\ninclude_if_exists = 'motus.conf'\n")
            self.path_file.write_text("timescaledb\n" if timescaledb else "plain\n")
        # Written at every start, so a restart keeps what the path needs.
        self._write_pg_settings(port, timescaledb=timescaledb)
        self._run_pg("pg_ctl", "-D", str(self.pg_data), "-l", str(self.pg_log),
                     "-w", "-t", str(int(START_TIMEOUT_S)), "start")

    def _write_pg_settings(self, port: int, *, timescaledb: bool) -> None:
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
        if timescaledb:
            settings["shared_preload_libraries"] = "'timescaledb'"
            settings["timescaledb.telemetry_level"] = "off"
            # One job scheduler per database with the extension, plus one worker per running
            # policy job (six per database when all fall due together); tests hold a few
            # databases at once (TimescaleDB docs, "Configuration: workers").
            settings["timescaledb.max_background_workers"] = "32"
            settings["max_worker_processes"] = "48"
            # A throwaway cluster makes databases often (one per test): find them within a second
            # rather than TimescaleDB's default minute.
            settings["timescaledb.bgw_launcher_poll_time"] = "1000"
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        path = self.pg_data / "motus.conf"
        path.write_text(text)
        self._chown(path)

    def _ensure_database(self, port: int) -> bool:
        """Create the motus database; say which path the server is on."""
        admin = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
            preloaded = conn.execute("SHOW shared_preload_libraries").fetchone()
        timescaledb = self.timescaledb()
        if timescaledb != ("timescaledb" in str(preloaded[0] if preloaded else "")):
            raise StackError(f"PostgreSQL in {self.root} runs with shared_preload_libraries = "
                             f"{preloaded[0] if preloaded else ''!r}, not what the "
                             f"{'timescaledb' if timescaledb else 'plain'} path needs; restart it "
                             "with `motus stack down` and `motus stack up`")
        return timescaledb

    # Mosquitto
    def _service_credentials(self) -> tuple[dynsec.Credential, dynsec.Credential]:
        """The admin and ingest identities, made once with the broker's identity file and kept
        (0600) so restarts and `motus stack env` can hand them out."""
        path = self.mqtt_dir / "service-credentials.json"
        dynsec_file = self.mqtt_dir / "dynamic-security.json"
        if dynsec_file.exists() and not path.exists():
            raise StackError(f"{path} is missing while {dynsec_file} exists; restore it, or "
                             "delete both to start with new identities (devices are lost)")
        if not dynsec_file.exists():
            self._make_dir(self.mqtt_dir)
            admin = dynsec.Credential.generate(dynsec.ADMIN_USERNAME)
            ingest = dynsec.Credential.generate(dynsec.INGEST_USERNAME)
            dynsec_file.write_text(json.dumps(dynsec.initial_config(admin, ingest), indent=2))
            dynsec_file.chmod(0o600)
            self._chown(dynsec_file)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump({"admin": admin.password, "ingest": ingest.password}, out)
        stored = json.loads(path.read_text())
        return (dynsec.Credential(dynsec.ADMIN_USERNAME, stored["admin"]),
                dynsec.Credential(dynsec.INGEST_USERNAME, stored["ingest"]))

    def _start_mosquitto(self, port: int, tls_port: int, ws_port: int) -> int:
        self._make_dir(self.mqtt_dir / "data")
        tls = ensure_dev_pki(self.root / "tls", ["localhost", MQTT_HOST])
        self._chown(tls.key_file)
        conf = self.mqtt_dir / "mosquitto.conf"
        log_file = self.mqtt_dir / "mosquitto.log"
        conf.write_text(render_mosquitto_conf(BrokerLayout(
            dynsec_plugin=find_dynsec_plugin(), dynsec_file=self.mqtt_dir / "dynamic-security.json",
            data_dir=self.mqtt_dir / "data", log_file=log_file,
            cert_file=tls.cert_file, key_file=tls.key_file,
            service_bind=MQTT_HOST, service_port=port, tls_bind=MQTT_HOST, tls_port=tls_port,
            ws_bind=MQTT_HOST, ws_port=ws_port,
        )))
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
        while not all(_port_open(p) for p in (port, tls_port, ws_port)):
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

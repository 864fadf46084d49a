"""Broker identity on a real Mosquitto: who may connect, publish and subscribe, and revocation.

Every client here is a real paho MQTT v5 client; devices are provisioned the way
`motus device register` does it (registry row + dynamic-security identity).
"""

import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from typer.testing import CliRunner

from connections.errors import BrokerRefused
from connections.mqtt import connect, disconnect, make_bulk_client, make_client
from motus.cli import app as cli_app
from protocol.agent_config import load_agent_config
from protocol.endpoint import MqttEndpoint
from protocol.envelope import SignalReading, build_event
from protocol.signing import device_id_for, private_key_from_pem, public_key_bytes, sign_event
from protocol.topics import Channel, device_topic
from registry.directory import DeviceDirectory
from simulators.fleet import drive_events, encode, make_fleet
from simulators.publisher import connect_device
from tests.fixtures.helpers import publisher, register, scalar, wait_until
from tests.fixtures.screen import assert_readable

pytestmark = pytest.mark.integration


class Listener:
    """A connected client that records what it receives and how its subscriptions went."""

    def __init__(self, endpoint: MqttEndpoint, client_id: str, filters: list[str]):
        self.messages: list[tuple[str, bytes | bytearray]] = []
        self.granted: list[str] = []
        self.disconnects: list[str] = []
        self.subscribed = threading.Event()
        self.client = connect_device(endpoint, client_id)
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = lambda _c, _u, _f, r, _p: self.disconnects.append(str(r))
        self.client.subscribe([(f, 1) for f in filters])
        assert self.subscribed.wait(10)

    def _on_subscribe(self, _c, _u, _mid, codes, _p):
        self.granted = [str(c) for c in codes]
        self.subscribed.set()

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def _watch_all_telemetry(stack) -> Listener:
    """The ingest identity's view: every device's telemetry, through a shared subscription."""
    return Listener(stack.ingest_endpoint, f"watch-{os.getpid()}-{threading.get_ident()}",
                    ["$share/watch/motus/v1/devices/+/telemetry"])


@pytest.fixture
def two_devices(local_stack, database_url):
    cars = make_fleet(2, seed=61, drive_seconds=5)
    register(database_url, cars, local_stack)
    return cars


def test_anonymous_and_wrong_password_are_refused(local_stack, two_devices):
    car = two_devices[0]
    anonymous = MqttEndpoint(host=local_stack.mqtt_host, port=local_stack.mqtt_port)
    with pytest.raises(BrokerRefused) as refused:
        connect_device(anonymous, "nobody-at-all")
    assert refused.value.reason == "Not authorized"
    wrong = local_stack.device_endpoint(car.device_id, car.mqtt_password + "x")
    with pytest.raises(BrokerRefused) as refused:
        connect_device(wrong, car.device_id)
    assert refused.value.reason == "Not authorized"
    connect_device(local_stack.device_endpoint(car.device_id, car.mqtt_password),
                   car.device_id).disconnect()


def test_a_device_cannot_publish_on_another_devices_topic(local_stack, two_devices):
    a, b = two_devices
    watcher = _watch_all_telemetry(local_stack)
    cars = publisher(local_stack)
    try:
        cars.publish(a, b.topic, b"posing as b")
        with pytest.raises(BrokerRefused) as refused:
            cars.flush()
        assert refused.value.reason == "Not authorized"
        cars.publish(a, device_topic(b.device_id, Channel.STATUS), b"offline")
        cars.publish(a, a.topic, b"marker")  # its own topic: allowed, and ordered after
        with pytest.raises(BrokerRefused):
            cars.flush()
        wait_until(lambda: bool(watcher.messages), 10, "a's own message")
        assert watcher.messages == [(a.topic, b"marker")]
    finally:
        cars.close()
        watcher.close()


def test_a_device_cannot_subscribe_to_another_devices_topics(local_stack, two_devices):
    a, b = two_devices
    spy = Listener(local_stack.device_endpoint(a.device_id, a.mqtt_password), a.device_id,
                   [b.topic, device_topic(b.device_id, Channel.COMMANDS), "motus/#", "#",
                    device_topic(a.device_id, Channel.COMMANDS)])
    watcher = _watch_all_telemetry(local_stack)
    cars = publisher(local_stack)
    try:
        assert spy.granted == ["Not authorized"] * 4 + ["Granted QoS 1"]
        cars.publish(b, *next(drive_events(b, datetime.now(UTC) - timedelta(seconds=2), 1)))
        cars.flush()
        wait_until(lambda: bool(watcher.messages), 10, "b's event to reach the ingest identity")
        assert spy.messages == []
    finally:
        cars.close()
        spy.close()
        watcher.close()


def test_a_device_cannot_take_over_another_devices_client_id(local_stack, two_devices):
    a, b = two_devices
    victim = Listener(local_stack.device_endpoint(b.device_id, b.mqtt_password), b.device_id,
                      [device_topic(b.device_id, Channel.COMMANDS)])
    try:
        # services' listener: the identity is bound to its own client id
        with pytest.raises(BrokerRefused) as refused:
            connect_device(local_stack.device_endpoint(a.device_id, a.mqtt_password, tls=False),
                           b.device_id)
        assert refused.value.reason == "Not authorized"
        # devices' TLS listener: the client id is replaced by the username, a's own
        connect_device(local_stack.device_endpoint(a.device_id, a.mqtt_password),
                       b.device_id).disconnect()
        assert victim.client.is_connected() and victim.disconnects == []
    finally:
        victim.close()


def test_tls_needs_our_ca_and_websocket_clients_get_in(local_stack, two_devices, running_ingest,
                                                       database_url):
    car = two_devices[0]
    trusted = local_stack.device_endpoint(car.device_id, car.mqtt_password)
    untrusted = trusted.model_copy(update={"ca_file": None})  # the system's trust store
    with pytest.raises(ssl.SSLCertVerificationError):
        make_client(untrusted, car.device_id).connect(untrusted.host, untrusted.port)
    websocket = local_stack.device_endpoint(car.device_id, car.mqtt_password, websockets=True)
    assert websocket.describe().startswith("wss://")
    cars = publisher(local_stack)
    cars.endpoint_for = lambda c: websocket
    cars.publish(car, *next(drive_events(car, datetime.now(UTC) - timedelta(seconds=2), 1)))
    cars.close()
    wait_until(lambda: scalar(database_url, "SELECT count(*) FROM telemetry_events") == 1, 20,
               "the event sent over a secure WebSocket to be stored")


def _motus(*args, env):
    return subprocess.run([sys.executable, "-m", "motus", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def test_register_list_and_revoke_through_the_cli(local_stack, database_url, running_ingest,
                                                  tmp_path):
    env = {**local_stack.env(), "MOTUS_DATABASE_URL": database_url}
    out = tmp_path / "device"
    result = _motus("device", "register", "--owner", "dana@test.example", "--vehicle",
                    "1M8GDM9AXKP042788", "--out", str(out), "--json", env=env)
    assert result.returncode == 0, result.stderr
    device = json.loads(result.stdout)
    assert {"device_id", "mqtt_username", "mqtt_password", "agent_config"} <= set(device)
    assert device["mqtt_username"] == device["device_id"]

    # the agent config is complete: key, broker over TLS with our CA, credentials
    config = load_agent_config(out / "agent.toml")
    key = private_key_from_pem(config.device.private_key_file.read_bytes())
    assert device_id_for(public_key_bytes(key)) == config.device.id == device["device_id"]
    assert config.broker.tls and config.broker.port == local_stack.mqtt_tls_port
    now = datetime.now(UTC)
    topic = device_topic(config.device.id)
    event = build_event(device_id=config.device.id, boot_id="cli", seq=0, time=now,
                        signals=[SignalReading(name="speed", timestamp=now, value=33)])
    live = Listener(config.broker, config.device.id,
                    [device_topic(config.device.id, Channel.COMMANDS)])
    info = live.client.publish(topic, encode(sign_event(event, topic, key)), qos=1)
    info.wait_for_publish(10)
    wait_until(lambda: scalar(database_url, "SELECT count(*) FROM telemetry_events") == 1, 20,
               "the registered device's event to be stored")

    # the database's copy of the broker password, as another broker (EMQX) would check it
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT password_hash, salt FROM mqtt_credentials WHERE username = %s",
                           (device["device_id"],)).fetchone()
    assert row is not None
    assert hashlib.pbkdf2_hmac("sha512", device["mqtt_password"].encode(), row[1].encode(),
                               10_000).hex() == row[0]

    listed = json.loads(_motus("device", "list", "--json", env=env).stdout)
    assert [(d["device_id"], d["owner"], d["vin"], d["revoked_at"]) for d in listed] == [
        (device["device_id"], "dana@test.example", "1M8GDM9AXKP042788", None)]

    revoked = _motus("device", "revoke", device["device_id"], env=env)
    assert revoked.returncode == 0, revoked.stderr
    wait_until(lambda: bool(live.disconnects), 10, "the broker to cut the device off")
    assert live.disconnects[0] == "Administrative action"
    live.close()
    with pytest.raises(BrokerRefused) as refused:
        connect_device(config.broker, config.device.id)
    assert refused.value.reason == "Not authorized"
    assert json.loads(_motus("device", "list", "--json", env=env).stdout)[0]["revoked_at"]
    assert scalar(database_url, "SELECT count(*) FROM mqtt_credentials") == 0
    unknown = _motus("device", "revoke", "no-such-device", env=env)
    assert unknown.returncode == 1 and "no device 'no-such-device'" in unknown.stderr


def test_register_refuses_a_key_twice_and_a_bad_vin_without_leaving_anything(
    local_stack, database_url, tmp_path
):
    env = {**local_stack.env(), "MOTUS_DATABASE_URL": database_url}
    key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    for vin, said in (("IOQ", "'IOQ' is not a VIN: a VIN has 17 characters (ISO 3779), this one has 3"),
                      ("WMWZZZ3CZ8EI23456", "it holds 'I' (I, O and Q never appear in a VIN")):
        bad_vin = _motus("device", "register", "--owner", "a@test.example", "--vehicle", vin,
                         "--public-key", key, "--out", str(tmp_path), "--json", env=env)
        assert bad_vin.returncode == 2 and said in bad_vin.stderr, bad_vin.stderr
        assert "Traceback" not in bad_vin.stderr and "violates" not in bad_vin.stderr
    bad_email = _motus("device", "register", "--owner", "not-an-address", "--public-key", key,
                       "--out", str(tmp_path), "--json", env=env)
    assert bad_email.returncode == 2
    assert "'not-an-address' is not an e-mail address (expected name@example.com)" in bad_email.stderr
    assert scalar(database_url, "SELECT count(*) FROM drivers") == 0
    first = _motus("device", "register", "--owner", "a@test.example", "--public-key", key,
                   "--out", str(tmp_path), "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["private_key_file"] is None
    second = _motus("device", "register", "--owner", "b@test.example", "--public-key", key,
                    "--json", env=env)
    assert second.returncode == 1 and "already registered" in second.stderr
    assert scalar(database_url, "SELECT count(*) FROM devices") == 1


def test_ingest_applies_a_revocation_from_its_next_batch(local_stack, database_url):
    cars = make_fleet(1, seed=62, drive_seconds=1)
    register(database_url, cars)
    with psycopg.connect(database_url) as conn:
        directory = DeviceDirectory(conn, ttl_s=3600)
        directory.refresh_revocations()
        record = directory.lookup(cars[0].device_id)
        assert record is not None and not record.revoked  # now cached for an hour
        with psycopg.connect(database_url) as other:
            other.execute("UPDATE devices SET revoked_at = now()")
        directory.refresh_revocations()
        record = directory.lookup(cars[0].device_id)
        assert record is not None and record.revoked


def test_the_directory_cache_expires_by_its_injected_clock(local_stack, database_url):
    cars = make_fleet(1, seed=63, drive_seconds=1)
    register(database_url, cars)
    now = [1000.0]
    with psycopg.connect(database_url) as conn:
        directory = DeviceDirectory(conn, ttl_s=5, monotonic=lambda: now[0])
        before = directory.lookup(cars[0].device_id)
        assert before is not None and before.vehicle_id is not None
        with psycopg.connect(database_url) as other:  # paired with another vehicle meanwhile
            row = other.execute("INSERT INTO vehicles (owner_id) SELECT owner_id FROM devices RETURNING id"
                                ).fetchone()
            assert row is not None
            other.execute("UPDATE devices SET vehicle_id = %s", (row[0],))
        now[0] += 4.9  # within the TTL: the cached record
        assert directory.lookup(cars[0].device_id) == before
        now[0] += 0.2  # past it: read again
        after = directory.lookup(cars[0].device_id)
        assert after is not None and after.vehicle_id == row[0] != before.vehicle_id


def test_register_keeps_secrets_out_of_the_work_tree_and_the_agent_reads_what_it_wrote(
        local_stack, database_url, tmp_path):
    env = {**local_stack.env(), "MOTUS_DATABASE_URL": database_url, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = _motus("device", "register", "--owner", "erin@test.example", "--json", env=env)
    assert result.returncode == 0, result.stderr
    device = json.loads(result.stdout)
    folder = tmp_path / "xdg" / "motus" / "devices" / device["device_id"]
    assert device["agent_config"] == str(folder / "agent.toml")
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    for secret in ("agent.toml", "device.key"):
        assert oct((folder / secret).stat().st_mode & 0o777) == "0o600"
    assert "warning" not in result.stderr

    # the file as written: `agent status` reads it, `agent run` asks for a source
    status = _motus("agent", "status", "--config", device["agent_config"], "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["events"] == 0
    run = _motus("agent", "run", "--config", device["agent_config"], env=env)
    assert run.returncode == 1
    assert "no source to read: add a [sources.elm327]" in run.stderr and "Traceback" not in run.stderr

    # a directory inside a git work tree gets a warning
    tree = tmp_path / "checkout"
    (tree / ".git").mkdir(parents=True)
    inside = _motus("device", "register", "--owner", "erin@test.example", "--out", str(tree / "devices"),
                    env=env)
    assert inside.returncode == 0, inside.stderr
    assert f"warning: {tree / 'devices'} is inside the work tree {tree}" in inside.stderr


def test_device_list_reads_at_80_columns(local_stack, database_url):
    cars = make_fleet(3, seed=77, drive_seconds=1)
    register(database_url, cars, local_stack)
    env = {**local_stack.env(), "MOTUS_DATABASE_URL": database_url, "COLUMNS": "80"}
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE drivers SET email = 'a.very.long.address.of.a.driver@fleet-operator.example'"
                     " WHERE email = 'owner1@test.example'")
    result = CliRunner().invoke(cli_app, ["device", "list"], env=env)
    assert result.exit_code == 0, result.output
    assert_readable(result.output, [c.device_id for c in cars] + [c.vin for c in cars])
    # the long address folds over lines, but all of it is there
    rest = result.output
    for other in [c.device_id for c in cars] + [c.vin for c in cars] + re.findall(r"\d{4}-\d\d-\d\d", rest):
        rest = rest.replace(other, "")
    assert "a.very.long.address.of.a.driver@fleet-operator.example" in "".join(rest.split())


def test_each_device_hears_its_own_receipts_and_only_ingest_may_send_them(
        local_stack, two_devices, running_ingest):
    """After a batch commits, ingest tells each device what it stored (and what it refused for
    good); a device may subscribe to its own receipts only, and nobody but ingest sends them."""
    from protocol.receipts import BootReceipt, parse_receipt

    a, b = two_devices
    mine = device_topic(a.device_id, Channel.RECEIPTS)
    # a's one connection both publishes and listens (a second one would take its client id over)
    ear = Listener(local_stack.device_endpoint(a.device_id, a.mqtt_password), a.device_id,
                   [mine, device_topic(b.device_id, Channel.RECEIPTS)])
    others = publisher(local_stack)

    def publish_as_a(topic: str, payload: bytes) -> None:
        ear.client.publish(topic, payload, qos=1).wait_for_publish(10)

    try:
        assert ear.granted == ["Granted QoS 1", "Not authorized"]
        start = datetime.now(UTC) - timedelta(seconds=6)
        events = list(drive_events(a, start, 5))
        for topic, payload in events:
            publish_as_a(topic, payload)
        others.publish(b, *next(drive_events(b, start, 1)))
        others.flush()
        # a's own events: one made an hour ahead, refused whole for good and settled with its
        # reason; one whose only reading is out of range, stored without it
        now = datetime.now(UTC)
        ahead = now + timedelta(hours=1)
        ahead_event = build_event(device_id=a.device_id, boot_id="other", seq=7, time=ahead,
                                  signals=[SignalReading(name="speed", timestamp=ahead, value=10)])
        publish_as_a(a.topic, encode(sign_event(ahead_event, a.topic, a.key)))
        bad_reading = build_event(device_id=a.device_id, boot_id="other", seq=8, time=now,
                                  signals=[SignalReading(name="speed", timestamp=now, value=10_000)])
        publish_as_a(a.topic, encode(sign_event(bad_reading, a.topic, a.key)))

        def settled() -> dict[str, BootReceipt]:
            merged: dict[str, BootReceipt] = {}
            for topic, payload in list(ear.messages):
                assert topic == mine
                for boot in parse_receipt(bytes(payload)):
                    into = merged.setdefault(boot.boot, BootReceipt(boot.boot))
                    into.stored += boot.stored
                    into.refused |= boot.refused
            return merged

        wait_until(lambda: len(settled()) == 2 and sum(
            hi - lo + 1 for lo, hi in settled()[a.boot_id].stored) == 5
            and settled()["other"].settled_ranges() == [(7, 8)], 20, "a's receipts")
        seqs = {int(json.loads(payload)["id"].rsplit(":", 1)[1]) for _, payload in events}
        assert all(settled()[a.boot_id].covers(seq) for seq in seqs)
        assert settled()["other"] == BootReceipt("other", [(8, 8)], {7: "timestamp_out_of_bounds"})
        ear.close()
        others.publish(a, mine, b'{"type":"motus.receipt.v1","boots":[]}')  # a device posing as ingest
        with pytest.raises(BrokerRefused) as refused:
            others.flush()
        assert refused.value.reason == "Not authorized"
    finally:
        others.close()
        ear.close()


def test_receipts_published_in_bulk_reach_each_device_once_and_in_order(local_stack, two_devices):
    """The ingest's ``publish_many``: 600 QoS 1 receipts through a window of 20 in flight,
    written as PUBACKs come back; each device hears its own, once, in order, and nothing stays
    unacknowledged."""
    ears = {car.device_id: Listener(local_stack.device_endpoint(car.device_id, car.mqtt_password),
                                    car.device_id, [device_topic(car.device_id, Channel.RECEIPTS)])
            for car in two_devices}
    ingest = make_bulk_client(local_stack.ingest_endpoint, f"bulk-receipts-{os.getpid()}", lambda _m: None)
    connect(ingest, local_stack.ingest_endpoint)
    assert ingest._max_inflight_messages == 1000  # the broker's Receive Maximum (max_inflight_messages)
    ingest._max_inflight_messages = 20  # narrower here, so that PUBACKs must refill it
    try:
        sent = {device: [f"receipt {i} for {device}".encode() for i in range(300)] for device in ears}
        for i in range(0, 300, 50):  # in batches, as the ingest sends them after each commit
            ingest.publish_many((device_topic(device, Channel.RECEIPTS), payloads[j])
                                for j in range(i, i + 50) for device, payloads in sent.items())
        wait_until(lambda: all(len(ear.messages) >= 300 for ear in ears.values()), 30, "600 receipts")
        wait_until(lambda: not ingest._out_messages, 10, "every PUBACK")
        assert {device: [bytes(p) for _t, p in ear.messages] for device, ear in ears.items()} == sent
        assert ingest._inflight_messages == 0
    finally:
        disconnect(ingest)
        for ear in ears.values():
            ear.close()

"""The broker's configuration, identities file, control commands, dev TLS and agent config."""

import base64
import ipaddress
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from broker_config import BrokerLayout, dynsec, render_mosquitto_conf
from broker_config.tls import ensure_dev_pki
from protocol.agent_config import (
    AgentConfig,
    AgentConfigError,
    DeviceSection,
    dump_agent_config,
    load_agent_config,
)
from protocol.endpoint import MqttEndpoint

DEVICE = "mdevice0000000000000000001"


def test_production_config_refuses_anonymous_and_listens_three_ways():
    conf = render_mosquitto_conf(BrokerLayout())
    lines = [line for line in conf.splitlines() if line and not line.startswith("#")]
    assert "allow_anonymous false" in lines and "allow_anonymous true" not in lines
    assert "per_listener_settings false" in lines  # the plugin guards every listener
    assert [line for line in lines if line.startswith("listener ")] == [
        "listener 1883 127.0.0.1", "listener 8883 0.0.0.0", "listener 8884 0.0.0.0"]
    assert lines.count("use_username_as_clientid true") == 2  # the devices' listeners
    assert lines.count("protocol websockets") == 1
    assert "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so" in lines
    assert "persistence true" in lines
    assert "$" not in conf.replace("$SYS", "")  # every placeholder filled


def test_password_hash_matches_what_mosquitto_ctrl_writes():
    # `mosquitto_ctrl dynsec init ds.json admin adminpw` (Mosquitto 2.0.11) wrote this pair.
    salt = base64.b64decode("VUjp8bxG+/vTdwSE")
    expected = ("wVx/+qE6Oyq+NjmqpC2imyQcZwZ2WmYFYs0EgJhe25UD4eADv4VTUlQK4ndEBVXmCh9P7a/+Ok/Clm50"
                "rmHYcg==")
    assert base64.b64encode(dynsec.hash_password("adminpw", salt)).decode() == expected


def test_initial_identities_allow_nothing_by_default():
    config = dynsec.initial_config(dynsec.Credential("motus-admin", "a"),
                                   dynsec.Credential("motus-ingest", "i"))
    assert config["defaultACLAccess"]["publishClientSend"] is False
    assert config["defaultACLAccess"]["subscribe"] is False
    assert [c["username"] for c in config["clients"]] == ["motus-admin", "motus-ingest"]
    assert all("a" != c["password"] != "i" for c in config["clients"])  # hashes, not passwords
    ingest = next(r for r in config["roles"] if r["rolename"] == dynsec.INGEST_ROLE)
    assert [a["topic"] for a in ingest["acls"] if a["acltype"] == "subscribePattern"] == [
        "$share/+/motus/v1/devices/+/telemetry"]
    assert [a["topic"] for a in ingest["acls"] if a["acltype"] == "publishClientSend"] == [
        "motus/v1/devices/+/receipts"]
    # a broker made before receipts gets the same ACLs added, each as the role holds it
    assert [{k: c[k] for k in ("acltype", "topic", "allow")} for c in dynsec.ingest_acl_commands()] == \
        ingest["acls"]


def test_a_device_role_names_only_its_own_topics():
    acls = dynsec.device_acls(DEVICE)
    assert {(a["acltype"], a["topic"]) for a in acls} == {
        ("publishClientSend", f"motus/v1/devices/{DEVICE}/telemetry"),
        ("publishClientSend", f"motus/v1/devices/{DEVICE}/status"),
        ("subscribeLiteral", f"motus/v1/devices/{DEVICE}/receipts"),
        ("unsubscribeLiteral", f"motus/v1/devices/{DEVICE}/receipts"),
        ("subscribeLiteral", f"motus/v1/devices/{DEVICE}/commands"),
        ("unsubscribeLiteral", f"motus/v1/devices/{DEVICE}/commands"),
    }
    assert all(a["allow"] and not re.search(r"[+#]", a["topic"]) for a in acls)


def test_provisioning_replaces_the_identity_and_binds_the_client_id():
    commands = dynsec.provision_device(DEVICE, "secret")
    assert [c["command"] for c in commands] == [
        "deleteClient", "deleteRole", "createRole", "createClient"]
    client = commands[-1]
    assert (client["username"], client["clientid"], client["password"]) == (
        DEVICE, DEVICE, "secret")
    assert client["roles"] == [{"rolename": dynsec.device_role(DEVICE)}]
    assert dynsec.revoke_device(DEVICE) == [{"command": "disableClient", "username": DEVICE}]


def test_dev_pki_signs_a_server_certificate_for_the_hosts_and_is_kept(tmp_path: Path):
    files = ensure_dev_pki(tmp_path, ["localhost", "127.0.0.1"])
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    server = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert oct(files.key_file.stat().st_mode & 0o777) == "0o600"
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    again = ensure_dev_pki(tmp_path, ["localhost"])
    assert again.ca_file.read_bytes() == files.ca_file.read_bytes()


def test_agent_config_round_trips_with_paths_relative_to_the_file(tmp_path: Path):
    config = AgentConfig(
        device=DeviceSection(id=DEVICE, private_key_file=Path("device.key")),
        broker=MqttEndpoint(host="mqtt.example", port=8883, tls=True, ca_file=Path("ca.crt"),
                            username=DEVICE, password="pw"),
        vehicle_vin="1M8GDM9AXKP042788",
    )
    path = tmp_path / "agent.toml"
    path.write_text(dump_agent_config(config))
    loaded = load_agent_config(path)
    assert loaded.device.private_key_file == tmp_path / "device.key"
    assert loaded.broker.ca_file == tmp_path / "ca.crt"
    assert loaded.broker.password == "pw" and loaded.broker.describe() == "mqtts://mqtt.example:8883"
    path.write_text(dump_agent_config(config).replace(f'id = "{DEVICE}"', 'id = "a/b"'))
    with pytest.raises(AgentConfigError, match=r"device\.id"):
        load_agent_config(path)

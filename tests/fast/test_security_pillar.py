"""The firewall and TLS as each host's pillar and states give them: every
port open to exactly the roles the registry names, ssh to the admin
networks, certificates from each of the three sources, refusals naming
the key."""
import copy

import pytest
import yaml

from tests.fast.conftest import EXAMPLE_APPS, SECRETS
from tests.layouts import LAYOUTS, REGISTRY, hosts_with, load_layout
from stackpillar.registry import resolve_registry
from stackpillar.topology import role_port

APPS = yaml.safe_load(EXAMPLE_APPS.read_text())["apps"]


def host_pillar(renderer, topology, host):
    renderer.use_topology(topology)
    pillar = renderer.pillar(host, topology["hosts"][host]["address"])
    assert "_errors" not in pillar, pillar.get("_errors")
    return pillar


def rules_by_port(pillar):
    return {rule["port"]: rule["sources"] for rule in pillar["firewall"]["rules"]}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_port_of_a_host_is_open_to_the_holders_of_the_roles_the_registry_names(renderer, layout):
    topology = load_layout(layout)
    registry = resolve_registry(REGISTRY, topology)
    address = {h: spec["address"] for h, spec in topology["hosts"].items()}
    for host, spec in topology["hosts"].items():
        wanted = {22: topology.get("admin_networks")}
        for role in spec["roles"]:
            for name, port in registry["roles"][role]["ports"].items():
                number = role_port(topology, registry, host, role, name)
                if "public" in port["from"]:
                    sources = None
                else:
                    peers = {h for r in port["from"] for h in hosts_with(topology, r)} - {host}
                    if not peers:
                        continue
                    sources = sorted(address[h] for h in peers)
                for n in [number] if number else [app["port"] for app in APPS.values()]:
                    wanted[n] = sources
        got = {port: None if s is None else sorted(s) for port, s in rules_by_port(host_pillar(renderer, topology, host)).items()}
        assert got == wanted, (layout, host)


def test_the_database_port_is_closed_to_the_load_balancer_and_open_to_app_hosts(renderer):
    topology = load_layout("three-tier")
    rules = rules_by_port(host_pillar(renderer, topology, "db1"))
    assert rules[5432] == ["10.77.0.11", "10.77.0.12"] and rules[11211] == ["10.77.0.11", "10.77.0.12"]
    assert rules_by_port(host_pillar(renderer, topology, "lb1")) == {22: ["10.77.0.1/32"], 80: None, 443: None}


def test_a_master_in_the_topology_opens_salts_ports_to_every_other_host(renderer):
    topology = copy.deepcopy(load_layout("three-tier"))
    topology["salt_master"] = "db1"
    others = sorted(spec["address"] for h, spec in topology["hosts"].items() if h != "db1")
    assert {p: sorted(rules_by_port(host_pillar(renderer, topology, "db1"))[p]) for p in (4505, 4506)} == \
        {4505: others, 4506: others}
    assert 4505 not in rules_by_port(host_pillar(renderer, topology, "app1"))
    # Replies and jobs from the master's ports are let in on every other host.
    assert host_pillar(renderer, topology, "db1")["firewall"]["salt_master"] is None
    assert host_pillar(renderer, topology, "app1")["firewall"]["salt_master"] == \
        {"address": topology["hosts"]["db1"]["address"], "ports": [4505, 4506]}


def test_every_host_lets_in_what_its_salt_master_sends_and_a_masterless_one_nothing(renderer):
    """The table's first load starts connection tracking: the minion's
    connections to its master, opened before, are let in by the master's
    ports (a lost job otherwise)."""
    topology = copy.deepcopy(load_layout("three-tier"))
    assert host_pillar(renderer, topology, "lb1")["firewall"]["salt_master"] == \
        {"address": topology["salt_master"], "ports": [4505, 4506]}
    del topology["salt_master"]
    assert host_pillar(renderer, topology, "lb1")["firewall"]["salt_master"] is None


def test_without_admin_networks_ssh_is_open_to_all_and_every_apply_says_so(renderer):
    topology = copy.deepcopy(load_layout("three-tier"))
    del topology["admin_networks"]
    pillar = host_pillar(renderer, topology, "app1")
    assert rules_by_port(pillar)[22] is None
    assert any("admin_networks is not set" in w for w in pillar["stack"]["warnings"])


@pytest.mark.parametrize("value, words", [
    ("10.0.0.0/8", "must be a list"),
    (["10.0.0.1/8"], "has host bits set"),
    (["nowhere"], "does not appear to be"),
])
def test_a_wrong_admin_network_is_refused_naming_the_key(renderer, value, words):
    topology = copy.deepcopy(load_layout("three-tier"))
    topology["admin_networks"] = value
    renderer.use_topology(topology)
    errors = " ".join(renderer.pillar("app1", "10.77.0.11")["_errors"])
    assert "topology:admin_networks" in errors and words in errors, errors


def with_tls(renderer, tls, secrets=None):
    apps = copy.deepcopy(APPS)
    apps["demo"]["tls"] = tls
    renderer.write("apps.sls", yaml.safe_dump({"apps": apps}))
    if secrets:
        renderer.write_secrets(secrets)
    topology = load_layout("scaled")
    renderer.use_topology(topology)
    lb = hosts_with(topology, "loadbalancer")[0]
    return renderer.pillar(lb, topology["hosts"][lb]["address"]), topology


def test_acme_certifies_the_dns_names_and_load_balancers_ask_each_other_for_tokens(renderer):
    pillar, topology = with_tls(renderer, {"source": "acme", "directory": "https://acme.example/dir"})
    lb = pillar["nginx"]["loadbalancer"]
    site = lb["sites"]["demo"]
    assert site["tls"]["names"] == ["demo.example.test"] and site["tls"]["hsts_seconds"] == 31536000
    other = hosts_with(topology, "loadbalancer")[1]
    assert lb["acme_peers"] == [f"{topology['hosts'][other]['address']}:80"]
    app = hosts_with(topology, "app")[0]
    django = renderer.pillar(app, topology["hosts"][app]["address"])["django"]["apps"]["demo"]
    assert django["https"] is True and django["hsts_seconds"] == 31536000


def test_a_certificate_from_pillar_reaches_the_load_balancers_only(renderer):
    secrets = copy.deepcopy(SECRETS)
    secrets["secrets"]["tls"] = {"demo": {"certificate": "-----BEGIN CERTIFICATE-----\nchain-of-the-fast-suite\n",
                                          "key": "-----BEGIN PRIVATE KEY-----\ntls-private-key-of-the-fast-suite\n"}}
    pillar, topology = with_tls(renderer, {"source": "pillar"}, secrets)
    assert "tls-private-key-of-the-fast-suite" in pillar["nginx"]["loadbalancer"]["sites"]["demo"]["tls"]["key"]
    for host, spec in topology["hosts"].items():
        if "loadbalancer" not in spec["roles"]:
            assert "tls-private-key-of-the-fast-suite" not in repr(renderer.pillar(host, spec["address"])), host


@pytest.mark.parametrize("tls, key, words", [
    ({"source": "letsencrypt"}, "apps:demo:tls:source", "must be one of"),
    ({"source": "acme"}, "apps:demo:tls:directory", "directory URL"),
    ({"source": "self_signed", "directory": "https://x/dir"}, "apps:demo:tls", "for source acme"),
    ({"source": "self_signed", "hsts": 5}, "apps:demo:tls:hsts", "unknown key"),
    ({"source": "pillar"}, "secrets:tls:demo:certificate", "missing"),
])
def test_a_wrong_tls_setting_is_refused_naming_the_key(renderer, tls, key, words):
    pillar, _ = with_tls(renderer, tls)
    errors = " ".join(pillar["_errors"])
    assert key in errors and words in errors, errors


def test_acme_needs_a_dns_name(renderer):
    apps = copy.deepcopy(APPS)
    apps["demo"]["tls"] = {"source": "acme", "directory": "https://acme.example/dir"}
    apps["demo"]["server_names"] = ["localhost", "127.0.0.1"]
    renderer.write("apps.sls", yaml.safe_dump({"apps": apps}))
    renderer.use_topology(load_layout("single"))
    errors = " ".join(renderer.pillar("web1", "10.77.0.10")["_errors"])
    assert "apps:demo:server_names" in errors and "DNS names" in errors, errors


@pytest.mark.parametrize("tls", [{"source": "self_signed"}, {"source": "acme", "directory": "https://acme.example/dir",
                                                             "ca_certificate": "-----BEGIN CERTIFICATE-----\nx\n"}])
def test_the_load_balancer_states_render_for_each_source(renderer, tls):
    with_tls(renderer, tls)
    topology = load_layout("scaled")
    lb = hosts_with(topology, "loadbalancer")[0]
    states = renderer.highstate(lb, topology["hosts"][lb]["address"])
    assert isinstance(states, dict), states
    assert "nginx-tls-default-certificate" in states
    if tls["source"] == "acme":
        assert {"nginx-tls-demo-stand-in", "nginx-tls-demo-acme", "nginx-tls-demo-acme-ca",
                "nginx-acme-renewal-timer"} <= set(states)
    else:
        assert "nginx-tls-demo-certificate" in states and "nginx-tls-demo-acme" not in states

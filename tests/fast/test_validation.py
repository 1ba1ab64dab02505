"""A wrong pillar fails rendering with a message naming the key and the host."""
import copy
import subprocess
import sys

import pytest

from tests.fast.conftest import SECRETS
from tests.layouts import load_layout


def broken(mutate):
    topology = copy.deepcopy(load_layout("three-tier"))
    mutate(topology)
    return topology


CASES = {
    "unknown role": (
        lambda t: t["hosts"]["app2"].update(roles=["app", "webserver"]),
        ["topology:hosts:app2:roles", "unknown role webserver"]),
    "address outside the network": (
        lambda t: t["hosts"]["db1"].update(address="192.168.5.5"),
        ["topology:hosts:db1:address", "outside topology:network"]),
    "duplicate address": (
        lambda t: t["hosts"]["app2"].update(address="10.77.0.11"),
        ["topology:hosts:app2:address", "already used"]),
    "missing address": (
        lambda t: t["hosts"]["media1"].pop("address"),
        ["topology:hosts:media1:address"]),
    "roles missing": (
        lambda t: t["hosts"]["lb1"].pop("roles"),
        ["topology:hosts:lb1:roles", "must be a list"]),
    "no roles left for the load balancer": (
        lambda t: t["hosts"]["lb1"].update(roles=[]),
        ["topology:hosts", "no host has the role loadbalancer"]),
    "roles as a string": (
        lambda t: t["hosts"]["lb1"].update(roles="loadbalancer"),
        ["topology:hosts:lb1:roles"]),
    "no database": (
        lambda t: t["hosts"]["db1"].update(roles=["cache"]),
        ["topology:hosts", "no host has the role database"]),
    "two primaries": (
        lambda t: t["hosts"]["app2"].update(roles=["app", "database"]),
        ["only one host may hold the role database", "db1", "app2"]),
    "a load balancer with nothing behind it": (
        lambda t: [t["hosts"][h].update(roles=["database"] if h == "db1" else ["loadbalancer"])
                   for h in t["hosts"]],
        ["topology:hosts", "no host has the role cache"]),
    "options for a role not held": (
        lambda t: t["hosts"]["app1"].update(options={"cache": {"memory_mb": 1}}),
        ["topology:hosts:app1:options:cache"]),
    "a rolling batch of no hosts": (
        lambda t: t.update(rolling_batch=0),
        ["topology:rolling_batch", "1 or more"]),
    "network not CIDR": (
        lambda t: t.update(network="10.77.0.0"),
        ["topology:network"]),
    "a misspelt host key": (
        lambda t: t["hosts"]["media1"].update(adress="10.77.0.30"),
        ["topology:hosts:media1:adress: unknown key"]),
    "an uppercase minion id": (
        lambda t: t["hosts"].update({"App3": {"address": "10.77.0.13", "roles": ["app"]}}),
        ["topology:hosts:App3", "lowercase hostname or FQDN"]),
}

# Per-role options, checked against the registry's schema: (options of one host, expected).
OPTION_CASES = {
    "a port for the app role": (
        "app1", {"app": {"port": 70000}},
        ["topology:hosts:app1:options:app:port", "unknown option for role app (known: processes, threads)"]),
    "cache memory not a number": (
        "db1", {"cache": {"memory_mb": "lots"}},
        ["topology:hosts:db1:options:cache:memory_mb", "whole number"]),
    "cache memory too small": (
        "db1", {"cache": {"memory_mb": 8}},
        ["topology:hosts:db1:options:cache:memory_mb", "between 16 and"]),
    "no worker processes": (
        "app2", {"app": {"processes": 0}},
        ["topology:hosts:app2:options:app:processes", "between 1 and 512"]),
    "threads as a boolean": (
        "app2", {"app": {"threads": True}},
        ["topology:hosts:app2:options:app:threads", "whole number"]),
    "database port out of range": (
        "db1", {"database": {"port": 70000}},
        ["topology:hosts:db1:options:database:port", "between 1 and 65535"]),
    "media body size in words": (
        "media1", {"media": {"client_max_body_size": "64 MB"}},
        ["topology:hosts:media1:options:media:client_max_body_size", "size such as"]),
    "an option the load balancer does not have": (
        "lb1", {"loadbalancer": {"workers": 4}},
        ["topology:hosts:lb1:options:loadbalancer:workers", "known: none"]),
    "a role's options not a mapping": (
        "db1", {"cache": 128},
        ["topology:hosts:db1:options:cache", "mapping"]),
    "the cache on the database's port": (
        "db1", {"cache": {"port": 5432}},
        ["topology:hosts:db1:options:cache:port", "port 5432 is already used by the role database"]),
}


@pytest.mark.parametrize("case", OPTION_CASES, ids=list(OPTION_CASES))
def test_bad_option_names_key_and_host(renderer, case, repo):
    host, options, expected = OPTION_CASES[case]
    topology = broken(lambda t: t["hosts"][host].update(options=options))
    renderer.use_topology(topology)
    errors = " ".join(renderer.pillar("app1", "10.77.0.11").get("_errors", []))
    for fragment in expected:
        assert fragment in errors, errors
    # The lab and the Vagrantfile run the same check through the same library.
    path = renderer.pillar_root / "topology.sls"
    run = subprocess.run([sys.executable, "-m", "stackpillar", "check", str(path)], cwd=repo / "pillar",
                         capture_output=True, text=True)
    assert run.returncode == 2
    for fragment in expected:
        assert fragment in run.stderr, run.stderr


def test_a_per_host_cache_port_reaches_the_apps(renderer):
    topology = broken(lambda t: t["hosts"]["db1"].update(options={"cache": {"port": 11300}}))
    renderer.use_topology(topology)
    assert renderer.pillar("db1", "10.77.0.20")["memcached"]["port"] == 11300
    assert renderer.pillar("app1", "10.77.0.11")["django"]["apps"]["demo"]["cache_servers"] == ["10.77.0.20:11300"]


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_topology_names_key_and_host(renderer, case):
    mutate, expected = CASES[case]
    renderer.use_topology(broken(mutate))
    errors = " ".join(renderer.pillar("app1", "10.77.0.11").get("_errors", []))
    for fragment in expected:
        assert fragment in errors, errors


def test_missing_secret_names_key_and_host(renderer):
    renderer.use_layout("three-tier")
    secrets = copy.deepcopy(SECRETS)
    del secrets["secrets"]["django"]
    renderer.write_secrets(secrets)
    errors = " ".join(renderer.pillar("app2", "10.77.0.12").get("_errors", []))
    assert "secrets:django:demo:secret_key: missing" in errors
    assert "app2" in errors
    # Hosts that never see that secret are unaffected.
    assert "_errors" not in renderer.pillar("db1", "10.77.0.20")

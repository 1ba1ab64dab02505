"""A wrong pillar fails rendering with a message naming the key and the host."""
import copy

import pytest

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
    "no roles": (
        lambda t: t["hosts"]["lb1"].update(roles=[]),
        ["topology:hosts:lb1:roles"]),
    "roles as a string": (
        lambda t: t["hosts"]["lb1"].update(roles="loadbalancer"),
        ["topology:hosts:lb1:roles"]),
    "no database": (
        lambda t: t["hosts"]["db1"].update(roles=["cache"]),
        ["topology:hosts", "no host has the role database"]),
    "two primaries": (
        lambda t: t["hosts"]["app2"].update(roles=["app", "database"]),
        ["only one host may hold the role database", "db1", "app2"]),
    "options for a role not held": (
        lambda t: t["hosts"]["app1"].update(options={"cache": {"memory_mb": 1}}),
        ["topology:hosts:app1:options:cache"]),
    "network not CIDR": (
        lambda t: t.update(network="10.77.0.0"),
        ["topology:network"]),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_topology_names_key_and_host(renderer, case):
    mutate, expected = CASES[case]
    renderer.use_topology(broken(mutate))
    errors = " ".join(renderer.pillar("app1", "10.77.0.11").get("_errors", []))
    for fragment in expected:
        assert fragment in errors, errors


def test_missing_secret_names_key_and_host(renderer):
    renderer.use_layout("three-tier")
    renderer.write_secrets({"secrets": {"postgres": {"users": {"demo": "x"}}}})
    errors = " ".join(renderer.pillar("app2", "10.77.0.12").get("_errors", []))
    assert "secrets:django:demo:secret_key is missing" in errors
    assert "app2" in errors
    # Hosts that never see that secret are unaffected.
    assert "_errors" not in renderer.pillar("db1", "10.77.0.20")

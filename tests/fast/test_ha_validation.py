"""Database HA topologies are checked before any host changes: several
database hosts need dcs hosts, an odd number of them; one dcs host is
allowed with a warning. Each refusal names the key and says what to add."""
import copy
import subprocess
import sys

import pytest
import yaml

import stackpillar
from tests.fast.conftest import PATRONI_SECRETS, SECRETS  # noqa: F401  (PATRONI_SECRETS re-exported)
from tests.layouts import EXAMPLE_APPS, REGISTRY, load_layout


def ha_secrets():
    return copy.deepcopy(SECRETS)


def three_tier(**changes):
    """three-tier with hosts' roles (and options) changed: {host: roles or (roles, options)};
    roles "+dcs" add dcs to the host's own."""
    topology = copy.deepcopy(load_layout("three-tier"))
    for host, spec in changes.items():
        roles, options = spec if isinstance(spec, tuple) else (spec, None)
        entry = topology["hosts"].setdefault(host, {"address": f"10.77.0.{21 + len(topology['hosts'])}"})
        entry["roles"] = entry["roles"] + [roles[1:]] if isinstance(roles, str) else roles
        if options is not None:
            entry["options"] = options
    return topology


REFUSED = {
    "two database hosts without dcs": (
        three_tier(db2=["database"]),
        ["topology:hosts: only one host may hold the role database without hosts with the role dcs",
         "got db1, db2", "add hosts with the role dcs (an odd number, 3 or more advised)",
         "or keep the role database on one host"]),
    "two dcs hosts": (
        three_tier(db1="+dcs", db2=["database", "dcs"]),
        ["topology:hosts: the role dcs needs an odd number of hosts (got 2: db1, db2)",
         "add one host with the role dcs or remove one"]),
    "four dcs hosts": (
        three_tier(db1="+dcs", db2=["database", "dcs"], db3=["database", "dcs"],
                   dcs4=["dcs"]),
        ["the role dcs needs an odd number of hosts (got 4", "4 hosts tolerate no more failures than 3"]),
    "members with different max_connections": (
        three_tier(db1=("+dcs", {"database": {"max_connections": 200}}),
                   db2=["database", "dcs"], db3=["database", "dcs"]),
        ["topology:hosts:db2:options:database:max_connections: must be the same on every host with the "
         "role database (db1: 200, db2: unset, db3: unset)"]),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_refused_before_any_host_changes(renderer, repo, case):
    topology, expected = REFUSED[case]
    renderer.use_topology(topology)
    renderer.write_secrets(ha_secrets())
    # Every minion's pillar fails (Salt applies nothing), the message naming the key.
    for host, spec in topology["hosts"].items():
        errors = " ".join(renderer.pillar(host, spec["address"]).get("_errors", []))
        for fragment in expected:
            assert fragment in errors, errors
    # The same check from the command line (the lab, the Vagrantfile).
    run = subprocess.run([sys.executable, "-m", "stackpillar", "check", str(renderer.pillar_root / "topology.sls")],
                         cwd=repo / "pillar", capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    for fragment in expected:
        assert fragment in run.stderr, run.stderr


def test_one_dcs_host_is_allowed_with_a_warning(renderer, repo):
    topology = three_tier(db1="+dcs")
    renderer.use_topology(topology)
    renderer.write_secrets(ha_secrets())
    warning = ("topology:hosts: the role dcs has one host (db1), fewer than the 3 advised: automatic "
               "database failover then depends on that one host")
    for host, spec in topology["hosts"].items():
        pillar = renderer.pillar(host, spec["address"])
        assert "_errors" not in pillar, pillar["_errors"]
        assert len(pillar["stack"]["warnings"]) == 1 and pillar["stack"]["warnings"][0].startswith(warning)
    # The one database host is a Patroni member (a cluster of one, ready for more).
    assert renderer.pillar("db1", "10.77.0.20")["postgres"]["patroni"] is True
    run = subprocess.run([sys.executable, "-m", "stackpillar", "check", str(renderer.pillar_root / "topology.sls")],
                         cwd=repo / "pillar", capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert f"warning: {warning}" in run.stderr


def test_three_members_and_three_dcs_hosts_pass_without_warning(renderer):
    topology = three_tier(db1="+dcs", db2=["database", "dcs"], db3=["database", "dcs"])
    renderer.use_topology(topology)
    renderer.write_secrets(ha_secrets())
    for host, spec in topology["hosts"].items():
        pillar = renderer.pillar(host, spec["address"])
        assert "_errors" not in pillar, pillar["_errors"]
        assert "warnings" not in pillar["stack"]


def test_dcs_hosts_of_their_own_are_allowed(renderer):
    topology = three_tier(db2=["database"], etcd1=["dcs"], etcd2=["dcs"], etcd3=["dcs"])
    renderer.use_topology(topology)
    renderer.write_secrets(ha_secrets())
    pillar = renderer.pillar("etcd2", topology["hosts"]["etcd2"]["address"])
    assert set(pillar["etcd"]["initial_cluster"]) == {"etcd1", "etcd2", "etcd3"}
    assert "postgres" not in pillar and "patroni" not in pillar


def test_patroni_secrets_are_needed_only_with_dcs_hosts(renderer):
    topology = three_tier(db1="+dcs", db2=["database", "dcs"], db3=["database", "dcs"])
    renderer.use_topology(topology)
    without = copy.deepcopy(SECRETS)
    del without["secrets"]["patroni"]
    renderer.write_secrets(without)
    errors = " ".join(renderer.pillar("db2", "10.77.0.21").get("_errors", []))
    assert "secrets:patroni:replication: missing (needed on db2" in errors
    assert "_errors" not in renderer.pillar("app1", "10.77.0.11")
    renderer.use_layout("three-tier")
    assert "_errors" not in renderer.pillar("db1", "10.77.0.20")


def registry_with(mutate):
    registry = copy.deepcopy(REGISTRY)
    mutate(registry["roles"])
    path_data = yaml.safe_dump(registry)
    return path_data


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r["database"]["with"].update(webserver={"hosts": {"min": 1}}),
     "roles:database:with:webserver: unknown role webserver"),
    (lambda r: r["database"]["with"]["dcs"].update(options={}),
     "roles:database:with:dcs: may replace only"),
    (lambda r: r["database"]["ports"]["postgres"].update(option="portnumber"),
     "roles:database:ports:postgres:option: portnumber is not an option of the role"),
    (lambda r: r["dcs"]["hosts"].update(advise={"min": 3}),
     "roles:dcs:hosts:advise: needs min (a number of hosts) and why"),
    (lambda r: r["dcs"]["hosts"].update(even=False),
     "roles:dcs:hosts: a mapping of"),
], ids=["unknown role in with", "with replaces options", "port option unknown", "advise without why",
        "unknown hosts key"])
def test_a_broken_registry_entry_is_named(tmp_path, mutate, expected):
    path = tmp_path / "roles.yaml"
    path.write_text(registry_with(mutate))
    with pytest.raises(stackpillar.TopologyError) as err:
        stackpillar.load_registry(str(path))
    assert expected in str(err.value)


def test_a_variant_applies_only_while_its_role_has_hosts():
    plain = stackpillar.check_topology({"topology": load_layout("three-tier")}, REGISTRY)
    resolved = stackpillar.resolve_registry(REGISTRY, plain)["roles"]["database"]
    assert resolved["states"] == ["postgres", "pgbackrest.database"] and resolved["hosts"]["max"] == 1
    assert list(resolved["ports"]) == ["postgres", "pgbackrest"] and "with" not in resolved
    ha = stackpillar.check_topology({"topology": three_tier(db1="+dcs")}, REGISTRY)
    resolved = stackpillar.resolve_registry(REGISTRY, ha)["roles"]["database"]
    assert resolved["states"] == ["postgres.server", "patroni", "postgres.databases", "pgbackrest.database"]
    assert resolved["ports"]["postgres"]["from"] == ["app", "database"]
    assert resolved["ports"]["patroni_api"] == {"port": 8008, "from": ["database"]}
    assert resolved["retire"] == ["patroni.clean", "postgres.clean"]


def test_the_ordered_deploy_reads_states_from_the_sites_registry():
    site = {"topology": {"topology": three_tier(db1="+dcs")}, "apps": yaml.safe_load(EXAMPLE_APPS.read_text()),
            "secrets": ha_secrets()}
    _hosts, steps = stackpillar.deploy_plan(site, REGISTRY)
    members = ["postgres.server", "patroni", "postgres.databases", "pgbackrest.database"]
    # The first member starts alone: it bootstraps (or takes over) the
    # cluster, once etcd runs (dcs requires the database and deploys first).
    assert steps[:3] == [("dcs", ["etcd"], ["db1"], []),
                         ("database-leader", members, ["db1"], ["dcs"]),
                         ("database", members, ["db1"], ["dcs", "database-leader"])]


def test_app_hosts_after_the_leader_follow_in_batches_of_rolling_batch():
    """One host at a time by default; topology:rolling_batch hosts at once."""
    topology = load_layout("scaled")
    site = {"topology": {"topology": topology}, "apps": yaml.safe_load(EXAMPLE_APPS.read_text()),
            "secrets": ha_secrets()}
    app_hosts = [h for h, spec in topology["hosts"].items() if "app" in spec["roles"]]
    assert len(app_hosts) == 3

    def app_steps():
        _hosts, steps = stackpillar.deploy_plan(site, REGISTRY)
        return [(step.name, step.hosts) for step in steps if step.name.startswith("app")]

    assert app_steps() == [("app-leader", app_hosts[:1]), ("app-batch-1", app_hosts[1:2]),
                           ("app-batch-2", app_hosts[2:])]
    topology["rolling_batch"] = 2
    assert app_steps() == [("app-leader", app_hosts[:1]), ("app-batch-1", app_hosts[1:])]

"""What each step of the ordered deploy waits for (stackpillar.deploy_steps):
a role's first step waits for the roles with lower steps tied to it by
requires, either way (pillar/roles.yaml), a role's further steps for the one
before, and every step for the earlier steps sharing a host with it. Steps
that wait for nothing unfinished run at once (salt/orchestrate/deploy.sls
renders them parallel; test_orchestrate.py checks the render); two steps on
one host never do."""
import copy
import re

import pytest
import yaml

import stackpillar
from tests.layouts import LAYOUTS, LAYOUTS_DIR, REGISTRY, load_layout

# Each example layout's steps in deploy order: name, hosts, and after "<-"
# the steps it waits for (besides the firewall, which every step waits for).
GRAPHS = {
    # One host: every step waits for every step before it.
    "single": """
        database      web1
        cache         web1  <- database
        media         web1  <- database cache
        app-leader    web1  <- database cache media
        loadbalancer  web1  <- database cache media app-leader
    """,
    "split": """
        database      db1
        cache         web1
        media         web1  <- cache
        app-leader    web1  <- database cache media
        loadbalancer  web1  <- cache media app-leader
    """,
    # media and backup on media1 while database and cache run on db1.
    "three-tier": """
        database      db1
        cache         db1     <- database
        media         media1
        backup        media1  <- database media
        app-leader    app1    <- database cache media
        app-batch-1   app2    <- app-leader
        loadbalancer  lb1     <- media app-leader app-batch-1
    """,
    "scaled": """
        database      db-01.example.internal
        cache         cache-01.example.internal,cache-02.example.internal
        media         media-01.example.internal,media-02.example.internal
        app-leader    app-01.example.internal  <- database cache media
        app-batch-1   app-02.example.internal  <- app-leader
        app-batch-2   app-03.example.internal  <- app-batch-1
        loadbalancer  lb-01.example.internal,lb-02.example.internal  <- media app-leader app-batch-1 app-batch-2
    """,
    # etcd first, then the Patroni leader alone, then every member; web1's
    # cache and media meanwhile.
    "replicated": """
        dcs              db1,db2,db3
        database-leader  db1          <- dcs
        database         db1,db2,db3  <- dcs database-leader
        cache            web1
        media            web1         <- cache
        backup           backup1      <- database-leader database media
        app-leader       web1         <- database-leader database cache media
        loadbalancer     web1         <- cache media app-leader
    """,
}


def graph(text):
    """[(step, hosts, needs)] from a GRAPHS entry."""
    steps = []
    for line in text.strip().splitlines():
        left, _, needs = line.partition("<-")
        name, hosts = left.split()
        steps.append((name, hosts.split(","), needs.split()))
    return steps


def plain(steps):
    return [(step.name, step.hosts, step.needs) for step in steps]


def role_of(step_name):
    return re.fullmatch(r"(.+?)(-leader|-batch-\d+)?", step_name).group(1)


def tied(roles, one, other):
    """Whether one of the two roles requires the other."""
    return one in (roles[other].get("requires") or []) or other in (roles[one].get("requires") or [])


def waits_for(steps):
    """{step: every step it waits for, directly or through others}."""
    before = {}
    for step in steps:
        before[step.name] = set(step.needs).union(*(before[need] for need in step.needs))
    return before


def test_every_example_layout_has_its_graph():
    assert sorted(GRAPHS) == LAYOUTS


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layouts_steps_and_what_they_wait_for(layout, say):
    steps = stackpillar.deploy_steps(load_layout(layout), REGISTRY)
    say(f"  {layout}: " + "; ".join(f"{s.name} <- {' '.join(s.needs) or 'firewall'}" for s in steps))
    assert plain(steps) == graph(GRAPHS[layout])


def test_on_one_host_the_deploy_is_sequential():
    steps = stackpillar.deploy_steps(load_layout("single"), REGISTRY)
    for number, step in enumerate(steps):
        assert step.needs == [earlier.name for earlier in steps[:number]], step.name


def cache_on_the_media_host():
    """three-tier with memcached moved from db1 to media1."""
    topology = copy.deepcopy(load_layout("three-tier"))
    topology["hosts"]["db1"]["roles"] = ["database"]
    topology["hosts"]["media1"]["roles"].insert(0, "cache")
    return topology


def rolling_two_at_a_time():
    topology = copy.deepcopy(load_layout("scaled"))
    topology["rolling_batch"] = 2
    return topology


def etcd_on_its_own_hosts():
    """replicated with etcd moved from the database hosts to etcd1-3, so
    that no shared host orders dcs and database."""
    layout = yaml.safe_load((LAYOUTS_DIR / "replicated.sls").read_text())
    for number, host in enumerate(["db1", "db2", "db3"], start=1):
        layout["topology"]["hosts"][host]["roles"] = ["database"]
        layout["topology"]["hosts"][f"etcd{number}"] = {"address": f"10.77.0.{40 + number}", "roles": ["dcs"]}
    return stackpillar.check_topology(layout, REGISTRY)


TOPOLOGIES = {**{layout: load_layout for layout in LAYOUTS},
              "three-tier, cache on media1": lambda _name: cache_on_the_media_host(),
              "scaled, rolling_batch 2": lambda _name: rolling_two_at_a_time(),
              "replicated, etcd on its own hosts": lambda _name: etcd_on_its_own_hosts()}


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_the_rules_hold(name):
    """Whatever the topology: a step waits only for earlier steps; steps
    sharing a host, a role's steps, and a role and a role tied to it by
    requires with a lower step are never at once."""
    topology = TOPOLOGIES[name](name)
    steps = stackpillar.deploy_steps(topology, REGISTRY)
    roles = stackpillar.resolve_registry(REGISTRY, topology)["roles"]
    before = waits_for(steps)
    for number, step in enumerate(steps):
        earlier = steps[:number]
        assert set(step.needs) <= {s.name for s in earlier}, step
        for other in earlier:
            if set(other.hosts) & set(step.hosts):
                assert other.name in before[step.name], (other.name, step.name, "share a host")
            if role_of(other.name) == role_of(step.name):
                assert other.name in before[step.name], (other.name, step.name, "one role")
            role, earlier_role = role_of(step.name), role_of(other.name)
            if (tied(roles, role, earlier_role)
                    and roles[earlier_role]["deploy"]["step"] < roles[role]["deploy"]["step"]):
                assert other.name in before[step.name], (other.name, step.name, "requires")


def test_steps_that_share_a_host_wait_for_each_other_though_their_roles_do_not():
    """cache and media need nothing but the firewall (every role tied to
    them by requires deploys later): on one host (media1) they go one after
    the other; cache no longer waits for the database, which left its host."""
    roles = REGISTRY["roles"]
    for role in ("cache", "media"):
        assert all(roles[other]["deploy"]["step"] > roles[role]["deploy"]["step"]
                   for other in roles if tied(roles, role, other)), role
    assert plain(stackpillar.deploy_steps(cache_on_the_media_host(), REGISTRY)) == graph("""
        database      db1
        cache         media1
        media         media1  <- cache
        backup        media1  <- database cache media
        app-leader    app1    <- database cache media
        app-batch-1   app2    <- app-leader
        loadbalancer  lb1     <- media app-leader app-batch-1
    """)


def test_the_waits_follow_requires_either_way():
    """dcs requires the database, yet Patroni's members wait for etcd (its
    lower step): the relation counts both ways. backup requires the
    database and media, so it waits for them though it shares no host."""
    assert REGISTRY["roles"]["dcs"]["requires"] == ["database"] and not REGISTRY["roles"]["database"]["requires"]
    assert plain(stackpillar.deploy_steps(etcd_on_its_own_hosts(), REGISTRY)) == graph("""
        dcs              etcd1,etcd2,etcd3
        database-leader  db1          <- dcs
        database         db1,db2,db3  <- database-leader
        cache            web1
        media            web1         <- cache
        backup           backup1      <- database-leader database media
        app-leader       web1         <- database-leader database cache media
        loadbalancer     web1         <- cache media app-leader
    """)


def test_a_role_tied_by_requires_with_a_higher_step_adds_no_wait():
    """dcs (step 5) requires the database (step 10) and waits for nothing.
    Moved to step 15, the same relation orders them the other way: the
    database waits for nothing and etcd for every member."""
    assert plain(stackpillar.deploy_steps(etcd_on_its_own_hosts(), REGISTRY))[0] == graph("""
        dcs  etcd1,etcd2,etcd3
    """)[0]
    later_etcd = copy.deepcopy(REGISTRY)
    later_etcd["roles"]["dcs"]["deploy"]["step"] = 15
    assert plain(stackpillar.deploy_steps(etcd_on_its_own_hosts(), later_etcd))[:3] == graph("""
        database-leader  db1
        database         db1,db2,db3        <- database-leader
        dcs              etcd1,etcd2,etcd3  <- database-leader database
    """)


def test_rolling_batches_follow_each_other():
    """topology:rolling_batch 2: the leader, then the two other app hosts."""
    assert plain(stackpillar.deploy_steps(rolling_two_at_a_time(), REGISTRY)) == graph("""
        database      db-01.example.internal
        cache         cache-01.example.internal,cache-02.example.internal
        media         media-01.example.internal,media-02.example.internal
        app-leader    app-01.example.internal  <- database cache media
        app-batch-1   app-02.example.internal,app-03.example.internal  <- app-leader
        loadbalancer  lb-01.example.internal,lb-02.example.internal  <- media app-leader app-batch-1
    """)


def test_deploy_plan_gives_the_same_steps():
    """deploy_plan (pillars first, then the steps) and deploy_steps agree."""
    from tests.fast.conftest import SECRETS
    from tests.layouts import EXAMPLE_APPS

    topology = load_layout("three-tier")
    site = {"topology": {"topology": topology}, "apps": yaml.safe_load(EXAMPLE_APPS.read_text()),
            "secrets": copy.deepcopy(SECRETS)}
    hosts, steps = stackpillar.deploy_plan(site, REGISTRY)
    assert hosts == list(topology["hosts"])
    assert plain(steps) == graph(GRAPHS["three-tier"])
    assert all(step.states == REGISTRY["roles"][role_of(step.name)]["states"] for step in steps)


def registry_file(tmp_path, mutate):
    registry = copy.deepcopy(REGISTRY)
    mutate(registry["roles"])
    path = tmp_path / "roles.yaml"
    path.write_text(yaml.safe_dump(registry))
    return str(path)


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r["app"]["deploy"].update(leader_frist=True),
     "roles:app:deploy: unknown keys ['leader_frist']"),
    (lambda r: r["cache"]["deploy"].update(step="20"),
     "roles:cache:deploy:step: must be a whole number (got '20')"),
    (lambda r: r["database"]["with"]["dcs"]["deploy"].pop("step"),
     "roles:database:with:dcs:deploy:step: must be a whole number (got None)"),
    (lambda r: r["app"]["deploy"].update(rolling="yes"),
     "roles:app:deploy:rolling: must be true or false (got 'yes')"),
], ids=["misspelt flag", "step not a number", "step missing in a variant", "rolling not a flag"])
def test_a_bad_deploy_entry_is_named(tmp_path, mutate, expected):
    with pytest.raises(stackpillar.TopologyError) as err:
        stackpillar.load_registry(registry_file(tmp_path, mutate))
    assert expected in str(err.value)

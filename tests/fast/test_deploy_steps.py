"""What each step of the ordered deploy waits for (stackpillar.deploy_steps):
a role's first step waits for the roles in its deploy:after (pillar/roles.yaml),
a role's further steps for the one before, and every step for the earlier
steps sharing a host with it. Steps that wait for nothing unfinished run at
once (salt/orchestrate/deploy.sls renders them parallel; test_orchestrate.py
checks the render); two steps on one host never do."""
import copy
import re

import pytest
import yaml

import stackpillar
from tests.layouts import LAYOUTS, REGISTRY, load_layout

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


TOPOLOGIES = {**{layout: load_layout for layout in LAYOUTS},
              "three-tier, cache on media1": lambda _name: cache_on_the_media_host(),
              "scaled, rolling_batch 2": lambda _name: rolling_two_at_a_time()}


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_the_rules_hold(name):
    """Whatever the topology: a step waits only for earlier steps; steps
    sharing a host, a role's steps, and a role and the roles of its
    deploy:after are never at once."""
    topology = TOPOLOGIES[name](name)
    steps = stackpillar.deploy_steps(topology, REGISTRY)
    registry = stackpillar.resolve_registry(REGISTRY, topology)
    before = waits_for(steps)
    for number, step in enumerate(steps):
        earlier = steps[:number]
        assert set(step.needs) <= {s.name for s in earlier}, step
        for other in earlier:
            if set(other.hosts) & set(step.hosts):
                assert other.name in before[step.name], (other.name, step.name, "share a host")
            if role_of(other.name) == role_of(step.name):
                assert other.name in before[step.name], (other.name, step.name, "one role")
            if role_of(other.name) in registry["roles"][role_of(step.name)]["deploy"]["after"]:
                assert other.name in before[step.name], (other.name, step.name, "deploy:after")


def test_steps_that_share_a_host_wait_for_each_other_though_their_roles_do_not():
    """cache and media need nothing but the firewall: on one host (media1)
    they go one after the other; cache no longer waits for the database,
    which left its host."""
    assert not REGISTRY["roles"]["cache"]["deploy"]["after"] and not REGISTRY["roles"]["media"]["deploy"]["after"]
    assert plain(stackpillar.deploy_steps(cache_on_the_media_host(), REGISTRY)) == graph("""
        database      db1
        cache         media1
        media         media1  <- cache
        backup        media1  <- database cache media
        app-leader    app1    <- database cache media
        app-batch-1   app2    <- app-leader
        loadbalancer  lb1     <- media app-leader app-batch-1
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
    (lambda r: r["app"]["deploy"]["after"].append("medai"),
     "roles:app:deploy:after: unknown role medai"),
    (lambda r: r["cache"]["deploy"].update(after=["app"]),
     "roles:cache:deploy:after: app deploys at step 40, not before this role's step 20"),
    (lambda r: r["dcs"]["deploy"].update(after=["database"]),
     "roles:dcs:deploy:after: database deploys at step 10, not before this role's step 5"),
    (lambda r: r["media"]["deploy"].update(after=["media"]),
     "roles:media:deploy:after: media is this role"),
    (lambda r: r["backup"]["deploy"].update(after="database"),
     "roles:backup:deploy:after: must be a list of roles (got 'database')"),
    (lambda r: r["loadbalancer"]["deploy"].pop("after"),
     "roles:loadbalancer:deploy:after: missing: the roles whose steps this role's first step waits for"),
    (lambda r: r["database"]["with"]["dcs"]["deploy"]["after"].append("loadbalancer"),
     "roles:database:with:dcs:deploy:after: loadbalancer deploys at step 50, not before this role's step 10"),
    # Another role's variant counts too: a role waits only for earlier steps, whatever the topology.
    (lambda r: r["database"]["with"]["dcs"]["deploy"].update(step=45),
     "roles:app:deploy:after: database deploys at step 45, not before this role's step 40"),
    (lambda r: r["app"]["deploy"].update(before=["loadbalancer"]),
     "roles:app:deploy: unknown keys ['before']"),
    (lambda r: r["cache"]["deploy"].update(step="20"),
     "roles:cache:deploy:step: must be a whole number (got '20')"),
    (lambda r: r["app"]["deploy"].update(rolling="yes"),
     "roles:app:deploy:rolling: must be true or false (got 'yes')"),
], ids=["unknown role", "a later role", "a later role's base entry", "itself", "not a list", "missing",
        "in a variant", "another role's variant", "unknown deploy key", "step not a number", "rolling not a flag"])
def test_a_bad_deploy_entry_is_named(tmp_path, mutate, expected):
    with pytest.raises(stackpillar.TopologyError) as err:
        stackpillar.load_registry(registry_file(tmp_path, mutate))
    assert expected in str(err.value)

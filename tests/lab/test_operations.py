"""The operations views (issue 11) on a deployed three-tier lab, through the
master as on real servers: `salt-run stack.plan` against the hosts as they
run, and `salt-run stack.status` against what is really up."""
import json
import re
import time

import pytest

import stack_checks as checks
from stacklab.saltctl import STACK_ENV
from stacklab.util import wait_until
from tests.layouts import load_layout

pytestmark = pytest.mark.layout("three-tier")

ENVS = (f"saltenv={STACK_ENV}", f"pillarenv={STACK_ENV}")
SALT_PYTHON = "/opt/salt/bin/python3"   # the lab master's Salt (stacklab/images)


@pytest.fixture(scope="module")
def topology():
    return load_layout("three-tier")


def runner_table(lab, fun, *args):
    """What an operator sees: the runner's table, printed by salt-run."""
    return lab.exec("salt", ["salt-run", fun, *ENVS, *args], check=True, timeout=900).stdout


def plan_data(lab, *args):
    return lab.salt_run("stack.plan", *ENVS, "data=True", *args, timeout=900)


def status_rows(lab):
    return lab.salt_run("stack.status", *ENVS, "data=True", timeout=900)


def row(rows, tier, host, what_starts):
    found = [r for r in rows if r["tier"] == tier and r["host"] == host and r["what"].startswith(what_starts)]
    assert len(found) == 1, (tier, host, what_starts, rows)
    return found[0]


def test_the_plan_is_what_the_hosts_run_and_whom_they_reach(lab, topology, say):
    """Every host's roles as in the topology, every service the plan names
    running, every peer port it names open from that host; after a deploy
    nothing would change."""
    say(runner_table(lab, "stack.plan"))
    got = plan_data(lab)
    assert list(got["hosts"]) == list(topology["hosts"])
    for host, plan in got["hosts"].items():
        assert plan["roles"] == topology["hosts"][host]["roles"], host
        assert plan["address"] == topology["hosts"][host]["address"], host
        testinfra = lab.host(host)
        for service in plan["services"]:
            assert "{" not in service, (host, service)   # the release's versions filled in
            assert testinfra.service(service).is_running, (host, service)
        targets = [[item["address"], item["port"]] for item in plan["talks_to"]]
        found = checks.scan_from(lab, host, targets)
        assert found == {f"{a} {p}": "open" for a, p in targets}, (host, found)
    assert got["changes"] == {h: {"states": got["changes"][h]["states"], "changes": [], "failed": [], "error": None}
                              for h in topology["hosts"]}, got["changes"]
    assert all(found["states"] > 0 for found in got["changes"].values())


def test_the_plan_shows_a_drifted_file_and_changes_nothing(lab, topology, say):
    """memcached's config edited by hand on the cache host: the plan names
    that state there and nowhere else, and leaves the edit in place; the
    next highstate puts it back, and then the plan shows nothing to change."""
    cache = checks.hosts_with(topology, "cache")[0]
    config = checks.formula_defaults("memcached")["config_file"]
    lab.exec(cache, f"echo '# edited by hand' >> {config}", check=True)
    try:
        got = plan_data(lab)
        say(f"plan after memcached's config was edited on {cache}: would change "
            f"{ {h: found['changes'] for h, found in got['changes'].items()} }")
        # The file, and the restart that watches it.
        assert got["changes"][cache]["changes"] == ["memcached-config", "memcached-service-running"], \
            got["changes"][cache]
        assert all(not found["changes"] for host, found in got["changes"].items() if host != cache), got["changes"]
        assert "# edited by hand" in lab.exec(cache, ["cat", config], check=True).stdout
    finally:
        changed = lab.highstate()
    assert changed[cache] >= 1 and all(changed[h] == 0 for h in lab.hosts if h != cache), changed
    # Nothing left to change (the plan is a state.apply test=True on every host).
    assert all(not found["changes"] for found in plan_data(lab)["changes"].values())


def test_the_offline_plan_is_the_plan_through_the_master(lab, topology):
    """python3 -m stackpillar plan on the master's site root prints the same
    hosts, ports and peers (services differ only by the release's version)."""
    # With Salt's own Python, which has PyYAML (the master's system Python may not).
    offline = lab.exec("salt", f"cd /srv/django-stack/pillar && {SALT_PYTHON} -m stackpillar plan /srv/site --json",
                       check=True).stdout
    offline = json.loads(offline)
    online = plan_data(lab, "test=False")["hosts"]
    for host in topology["hosts"]:
        for key in ("roles", "address", "listens", "talks_to"):
            assert offline[host][key] == online[host][key], (host, key)


def test_status_shows_every_tier_up_then_a_stopped_app_host_down(lab, topology, say):
    """Every figure against the real state: upstreams, vassals and their
    workers (the vassal's processes), the leader, memcached's memory limit,
    disk paths, the newest backup's label. Then uWSGI stopped on one app
    host: its upstream is down at the load balancer and its vassal has 0
    workers, the other app host stays up; started again, it is back."""
    checks.wait_first_backup(lab, topology)
    checks.wait_healthy(lab, topology)
    # The memcached restart of the test before: the apps' cache client
    # skips a host that failed for its dead_timeout (30 s, djangostack),
    # and /healthz answers 503 meanwhile.
    def all_up():
        bad = [r for r in status_rows(lab) if r["state"] not in ("up", "ok")]
        return not bad, f"{bad}"
    wait_until(all_up, timeout=90, what="every status row up", interval=5)
    rows = status_rows(lab)
    say(runner_table(lab, "stack.status"))
    lb = checks.hosts_with(topology, "loadbalancer")[0]
    app_hosts = checks.hosts_with(topology, "app")
    database = checks.hosts_with(topology, "database")[0]
    cache = checks.hosts_with(topology, "cache")[0]
    backup = checks.backup_host(topology)
    bad = [r for r in rows if r["state"] not in ("up", "ok")]
    assert not bad, bad
    for app_host in app_hosts:
        assert row(rows, "loadbalancer", lb, f"demo app {app_host} ")["state"] == "up"
        ini = lab.exec(app_host, "cat /etc/uwsgi-emperor/vassals/demo.ini", check=True).stdout
        processes = int(re.search(r"^processes\s*=\s*(\d+)", ini, re.M).group(1))
        assert row(rows, "app", app_host, "uwsgi demo")["detail"].startswith(f"{processes} workers: "), rows
    for media in checks.hosts_with(topology, "media"):
        assert row(rows, "loadbalancer", lb, f"demo media {media} ")["state"] == "up"
    assert row(rows, "database", database, "postgres leader")["state"] == "up"
    assert checks.leader(lab, topology) == database
    stats = lab.exec(cache, ["python3", "-c", checks.MEMCACHED_STATS, lab.address(cache), str(checks.MEMCACHED_PORT)],
                     check=True).stdout
    limit = int(re.search(r"STAT limit_maxbytes (\d+)", stats).group(1))
    assert f"of {limit / 1024 ** 2:.1f} MiB" in row(rows, "cache", cache, "memcached")["detail"]
    assert row(rows, "disk", database, "/var/lib/postgresql")["state"] == "ok"
    assert row(rows, "disk", backup, checks.PGBACKREST["repo_path"])["state"] == "ok"
    newest = max(checks.backups(lab, topology), key=lambda b: b["timestamp"]["stop"])
    assert newest["label"] in row(rows, "backup", backup, "last backup")["detail"]

    stopped = app_hosts[-1]
    lab.exec(stopped, "systemctl stop uwsgi-emperor", check=True)
    try:
        say(runner_table(lab, "stack.status"))
        rows = status_rows(lab)
        assert row(rows, "loadbalancer", lb, f"demo app {stopped} ")["state"] == "down"
        vassal = row(rows, "app", stopped, "uwsgi demo")
        assert vassal["state"] == "down" and vassal["detail"].startswith("0 workers"), vassal
        for other in app_hosts[:-1]:
            assert row(rows, "loadbalancer", lb, f"demo app {other} ")["state"] == "up"
            assert row(rows, "app", other, "uwsgi demo")["state"] == "up"
    finally:
        lab.exec(stopped, "systemctl start uwsgi-emperor", check=True)
    deadline = time.monotonic() + 120
    while True:
        rows = status_rows(lab)
        back = [row(rows, "loadbalancer", lb, f"demo app {stopped} "), row(rows, "app", stopped, "uwsgi demo")]
        if all(r["state"] == "up" for r in back):
            break
        assert time.monotonic() < deadline, back
        time.sleep(3)
    say(runner_table(lab, "stack.status"))

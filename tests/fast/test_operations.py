"""The operations views (issue 11): the plan from the site data alone, and
the runner's reading of what hosts answer (canned Salt returns), and the
probes of formulas/_modules/stackstatus.py against local stand-ins."""
import datetime
import importlib.util
import json
import os
import socket
import struct
import subprocess
import sys
import threading

import pytest
import yaml

import stackpillar
from stackpillar.registry import resolve_registry
from stackpillar.topology import role_port

from conftest import ENV, REPO, SECRETS, roots
from tests.layouts import EXAMPLE_APPS, LAYOUTS, LAYOUTS_DIR, REGISTRY, hosts_with, load_layout

APPS = stackpillar.check_apps(yaml.safe_load(EXAMPLE_APPS.read_text()))
NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.timezone.utc)


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = load("salt/_runners/stack.py", "stack_runner")
probes = load("formulas/_modules/stackstatus.py", "stackstatus")


def site_dir(tmp_path, layout, secrets=True):
    site = tmp_path / "site"
    site.mkdir()
    (site / "topology.sls").write_text((LAYOUTS_DIR / f"{layout}.sls").read_text())
    (site / "apps.sls").write_text(EXAMPLE_APPS.read_text())
    if secrets:
        (site / "secrets.sls").write_text(yaml.safe_dump(SECRETS))
    return site


def expected_plan(topology):
    """What the registry says, computed port by port: each host's roles and
    services, the ports its roles open to other hosts, and for each host the
    peers whose roles let it in."""
    registry = resolve_registry(REGISTRY, topology)
    opened = {}
    for host, spec in topology["hosts"].items():
        opened[host] = set()
        for role in spec["roles"]:
            for name, port in registry["roles"][role]["ports"].items():
                numbers = [role_port(topology, registry, host, role, name)] if port["port"] else \
                    [app["port"] for app in APPS.values()]
                public = "public" in port["from"]
                peers = {h for r in port["from"] if r != "public" for h in hosts_with(topology, r)} - {host}
                if public or peers:
                    opened[host] |= {(n, role, name, "public" if public else frozenset(peers)) for n in numbers}
    plan = {}
    for host, spec in topology["hosts"].items():
        plan[host] = {
            "roles": spec["roles"],
            "address": spec["address"],
            "services": {s for r in spec["roles"] for s in registry["roles"][r]["expect"]["services"]},
            "listens": opened[host],
            "talks_to": {(peer, n, role, name) for peer in topology["hosts"] for n, role, name, who in opened[peer]
                         if who != "public" and host in who},
        }
    return plan


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_offline_plan_of_every_layout_is_what_the_registry_says(tmp_path, layout):
    """`python3 -m stackpillar plan SITE_DIR --json` needs no secrets; each
    host's roles, services, open ports and peers match the registry."""
    site = site_dir(tmp_path, layout, secrets=False)
    run = subprocess.run([sys.executable, "-m", "stackpillar", "plan", str(site), "--json"], cwd=REPO / "pillar",
                         capture_output=True, text=True, check=True)
    got = json.loads(run.stdout)
    topology = load_layout(layout)
    want = expected_plan(topology)
    assert list(got) == list(topology["hosts"])
    for host, plan in got.items():
        assert plan["roles"] == want[host]["roles"], host
        assert plan["address"] == want[host]["address"], host
        assert set(plan["services"]) == want[host]["services"], host
        assert {(i["port"], i["role"], i["name"], "public" if i["from"] == ["public"] else frozenset(i["from"]))
                for i in plan["listens"]} == want[host]["listens"], host
        assert {(i["peer"], i["port"], i["role"], i["name"]) for i in plan["talks_to"]} == want[host]["talks_to"], host
    # The table names every host and every peer port.
    table = subprocess.run([sys.executable, "-m", "stackpillar", "plan", str(site)], cwd=REPO / "pillar",
                           capture_output=True, text=True, check=True).stdout
    for host, plan in got.items():
        assert host in table
        for item in plan["talks_to"]:
            assert f"{item['peer']}:{item['port']}" in table


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_peer_in_the_plan_is_let_in_by_that_peers_firewall(tmp_path, layout):
    """The plan and the firewall pillar agree: a host talks to a peer on a
    port exactly where the peer's firewall lets its address in."""
    site = stackpillar.load_site([str(site_dir(tmp_path, layout))])
    topology, apps = stackpillar.build.checked_site(site, REGISTRY)
    plan = stackpillar.site_plan(topology, apps, REGISTRY)
    let_in = set()
    for peer in topology["hosts"]:
        for rule in stackpillar.build_pillar(peer, site, REGISTRY)["firewall"]["rules"]:
            let_in |= {(address, peer, rule["port"]) for address in rule["sources"] or []}
    talks = {(plan[h]["address"], item["peer"], item["port"]) for h in plan for item in plan[h]["talks_to"]}
    hosts_let_in = {(a, p, n) for a, p, n in let_in if a in {s["address"] for s in topology["hosts"].values()}
                    and n not in stackpillar.firewall.SALT_MASTER_PORTS}
    assert talks == hosts_let_in


def test_services_name_the_postgres_version_when_the_host_release_is_known():
    topology = load_layout("replicated")
    releases = {"db1": {"osmajorrelease": 13}, "db2": {"osmajorrelease": 12}, "db3": None}
    facts = runner.host_facts(releases, {12: {"version": 15}, 13: {"version": 17}})
    plan = stackpillar.site_plan(topology, APPS, REGISTRY, facts)
    assert plan["db1"]["services"][0] == "patroni@17-main"
    assert plan["db2"]["services"][0] == "patroni@15-main"
    assert plan["db3"]["services"][0] == "patroni@{postgres_version}-main"


# --- the runner's plan: what state.apply test=True would change --------------------------------

def state(sid, result, changes=None, run=0, comment=""):
    return {f"file_|-{sid}_|-/etc/{sid}_|-managed": {"__id__": sid, "result": result, "changes": changes or {},
                                                    "__run_num__": run, "comment": comment}}


def test_would_change_lists_the_states_test_mode_marks_in_run_order():
    states = {**state("b-changes", None, {"diff": "..."}, run=2), **state("a-same", True, run=0),
              **state("c-fails", False, run=3, comment="bad source"), **state("d-would", None, run=1)}
    assert runner.would_change(states) == {"states": 4, "changes": ["d-would", "b-changes"],
                                           "failed": ["c-fails: bad source"], "error": None}
    assert runner.would_change(None)["error"] == "no answer"
    assert runner.would_change(["Rendering SLS 'stack:django' failed"])["error"].startswith("Rendering SLS")


def test_plan_through_the_master_prints_the_table_and_the_changes(tmp_path, monkeypatch):
    site = site_dir(tmp_path, "three-tier")
    calls = []

    def call(hosts, fun, arg=(), kwarg=None, timeout=None):
        calls.append((fun, kwarg))
        if fun == "grains.item":
            return {h: {"osmajorrelease": 13} for h in hosts}
        assert fun == "state.apply" and kwarg == {"test": True, "saltenv": ENV, "pillarenv": ENV}
        return {h: {**(state("nginx-config", None, {"diff": "x"}) if h == "lb1" else {}), **state("ok", True, run=1)}
                for h in hosts if h != "media1"}

    monkeypatch.setattr(runner, "__opts__", {**roots(site), "conf_file": "/dev/null"}, raising=False)
    monkeypatch.setattr(runner, "_call", call)
    data = runner.plan(data=True)
    assert data["hosts"]["db1"]["services"] == ["postgresql@17-main", "memcached"]
    assert data["changes"]["lb1"]["changes"] == ["nginx-config"]
    assert data["changes"]["app1"]["changes"] == []
    assert data["changes"]["media1"]["error"] == "no answer"
    text = runner.plan()
    assert "What would change (state.apply test=True saltenv=stack pillarenv=stack)" in text
    assert [line.split()[:4] for line in text.splitlines() if line.startswith(("lb1 ", "app1 "))][-2:] == [
        ["lb1", "2", "1", "0"], ["app1", "1", "0", "0"]]
    assert "app1:8000 (app uwsgi)" in text
    assert runner.plan(test=False).startswith("HOST")


# --- the runner's status: canned answers --------------------------------------------------------

def uwsgi_answer(statuses, listen_queue=0):
    workers = [{"id": i + 1, "status": s, "requests": 10, "cores": [{"in_request": int(s == "busy")}, {"in_request": 0}]}
               for i, s in enumerate(statuses)]
    return {"stats": json.dumps({"listen_queue": listen_queue, "workers": workers})}


def pgbackrest_info(*backups, archive_max="000000010000000000000007"):
    return {"retcode": 0, "stdout": json.dumps([{
        "name": "main", "status": {"code": 0, "message": "ok"},
        "archive": [{"id": "17-1", "min": "000000010000000000000001", "max": archive_max}],
        "backup": [{"label": label, "type": kind, "timestamp": {"start": stop - 60, "stop": stop},
                    "info": {"size": 36700160}, "error": False} for label, kind, stop in backups]}]), "stderr": ""}


def database_answer(in_recovery, replicas=()):
    return {"retcode": 0, "stderr": "", "stdout": json.dumps({"in_recovery": in_recovery, "replicas": list(replicas)})}


def status_summary(layout):
    topology = load_layout(layout)
    return runner.view_summary({"lib": stackpillar, "topology": topology, "registry": REGISTRY, "apps": APPS})


def test_upstreams_up_down_and_failing_as_the_load_balancer_finds_them():
    summary = status_summary("three-tier")
    probes_ = [
        {"site": "demo", "kind": "app", "server": "10.77.0.11:8000", "protocol": "uwsgi", "path": "/healthz",
         "status": 200, "seconds": 0.012},
        {"site": "demo", "kind": "app", "server": "10.77.0.12:8000", "protocol": "uwsgi", "path": "/healthz",
         "error": "Connection refused", "seconds": 0.001},
        {"site": "demo", "kind": "media", "server": "10.77.0.30:8080", "protocol": "http", "path": "/",
         "status": 404, "seconds": 0.002},
    ]
    rows = runner.upstream_rows(summary, {"lb1": probes_})
    assert [(r["host"], r["what"], r["state"]) for r in rows] == [
        ("lb1", "demo app app1 (10.77.0.11:8000)", "up"),
        ("lb1", "demo app app2 (10.77.0.12:8000)", "down"),
        ("lb1", "demo media media1 (10.77.0.30:8080)", "up"),
    ]
    assert rows[0]["detail"] == "200 to uwsgi GET /healthz in 12 ms"
    failing = runner.upstream_rows(summary, {"lb1": [{**probes_[0], "status": 503}]})
    assert failing[0]["state"] == "failing"
    assert runner.upstream_rows(summary, {})[0]["state"] == "unknown"


def test_upstream_targets_are_the_load_balancers_own_upstreams(tmp_path):
    site = stackpillar.load_site([str(site_dir(tmp_path, "scaled"))])
    lb = stackpillar.build_pillar("lb-01.example.internal", site, REGISTRY)
    health_path = yaml.safe_load((REPO / "formulas" / "django" / "defaults.yaml").read_text())[
        "django"]["app_defaults"]["health_path"]
    targets = runner.upstream_targets(lb, health_path)
    sites = lb["nginx"]["loadbalancer"]["sites"]
    assert [t["server"] for t in targets if t["kind"] == "app"] == sites["demo"]["app_upstreams"]
    assert [t["server"] for t in targets if t["kind"] == "media"] == sites["demo"]["media_upstreams"]
    assert {(t["protocol"], t["path"]) for t in targets if t["kind"] == "app"} == {("uwsgi", health_path)}
    assert {t["host"] for t in targets} == {APPS["demo"]["server_names"][0]}


def test_uwsgi_vassals_with_busy_and_idle_workers_or_down():
    summary = status_summary("three-tier")
    rows = runner.uwsgi_rows(summary, {
        "app1": {"demo": uwsgi_answer(["busy", "idle", "idle", "idle"], listen_queue=3)},
        "app2": {"demo": {"error": "/run/uwsgi-stats/demo/stats.sock: Connection refused"}},
    })
    assert [(r["host"], r["what"], r["state"]) for r in rows] == [("app1", "uwsgi demo", "up"),
                                                                  ("app2", "uwsgi demo", "down")]
    assert rows[0]["detail"] == "4 workers: 1 busy, 3 idle; 40 requests; listen queue 3"
    assert rows[1]["detail"].startswith("0 workers: ")
    assert runner.uwsgi_workers({"stats": json.dumps({"workers": [
        {"status": "idle", "cores": [{"in_request": 1}]}, {"status": "cheap"}]})}) == {
        "workers": 2, "busy": 1, "idle": 0, "requests": 0, "listen_queue": 0}


def test_database_members_leader_and_lag():
    summary = status_summary("replicated")
    rows = runner.database_rows(summary, {
        "db1": database_answer(False, [
            {"address": "10.77.0.21", "state": "streaming", "sync": "sync", "lag_bytes": 0, "replay_lag_seconds": 0.2},
        ]),
        "db2": database_answer(True),
        "db3": database_answer(True),
    }, {"db2": {"retcode": 0, "stdout": json.dumps([
        {"Cluster": "17-main", "Member": "db1", "Role": "Leader", "State": "running", "TL": 3},
        {"Cluster": "17-main", "Member": "db2", "Role": "Sync Standby", "State": "streaming", "TL": 3},
        {"Cluster": "17-main", "Member": "db3", "Role": "Replica", "State": "starting", "TL": 2}])}})
    assert [(r["host"], r["what"], r["state"]) for r in rows] == [
        ("db1", "postgres leader", "up"), ("db2", "postgres replica", "up"), ("db3", "postgres replica", "failing")]
    assert rows[0]["detail"] == "1 replicas streaming; patroni: Leader running, TL 3"
    assert rows[1]["detail"] == "streaming (sync), lag 0 B, 0.2 s; patroni: Sync Standby streaming, TL 3"
    down = runner.database_rows(summary, {"db1": {"retcode": 2, "stdout": "", "stderr": "psql: error: connection "
                                                  "to server on socket failed"}, "db2": None,
                                          "db3": database_answer(True)})
    assert [r["state"] for r in down] == ["down", "down", "failing", "down"]
    assert down[-1]["what"] == "leader" and down[1]["detail"] == "no answer"


def test_a_plain_database_is_its_own_leader():
    rows = runner.database_rows(status_summary("three-tier"), {"db1": database_answer(False)})
    assert [(r["host"], r["what"], r["state"], r["detail"]) for r in rows] == [
        ("db1", "postgres leader", "up", "0 replicas streaming")]


def test_memcached_hit_ratio_and_memory():
    rows = runner.memcached_rows(status_summary("scaled"), {
        "cache-01.example.internal": {"get_hits": "90", "get_misses": "10", "bytes": "1048576",
                                      "limit_maxbytes": "67108864", "curr_connections": "12"},
        "cache-02.example.internal": {"error": "10.77.0.41:11211: Connection refused"},
    })
    assert [(r["state"], r["detail"]) for r in rows] == [
        ("up", "hit ratio 90.0 % (90 hits, 10 misses); memory 1.0 MiB of 64.0 MiB; 12 connections"),
        ("down", "10.77.0.41:11211: Connection refused")]


def test_disk_use_per_path_warns_when_nearly_full():
    paths = runner.disk_paths(load_layout("three-tier"), "/srv/media", "/var/lib/pgbackrest", "/var/lib/media-backups")
    assert paths == {"db1": ["/var/lib/postgresql"],
                     "media1": ["/srv/media", "/var/lib/pgbackrest", "/var/lib/media-backups"]}
    gib = 1024 ** 3
    rows = runner.disk_rows({"db1": paths["db1"], "media1": paths["media1"][:2], "app1": ["/x"]}, {
        "db1": {"/var/lib/postgresql": {"total": 10 * gib, "available": 1 * gib}},
        "media1": {"/srv/media": {"total": 10 * gib, "available": 9 * gib}}})
    assert [(r["host"], r["what"], r["state"], r["detail"]) for r in rows] == [
        ("db1", "/var/lib/postgresql", "warn", "90 % used, 1.0 GiB free of 10.0 GiB"),
        ("media1", "/srv/media", "ok", "10 % used, 9.0 GiB free of 10.0 GiB"),
        ("media1", "/var/lib/pgbackrest", "unknown", "no such path"),
        ("app1", "/x", "unknown", "no answer")]


def test_the_last_backup_is_the_newest_one():
    summary = status_summary("three-tier")
    stop = int(NOW.timestamp()) - 3 * 3600
    rows = runner.backup_rows(summary, {"media1": pgbackrest_info(
        ("20261120-013000F", "full", stop - 86400), ("20261122-013000F_20261122-090000D", "diff", stop))}, NOW)
    assert rows == [{"tier": "backup", "host": "media1", "what": "last backup", "state": "ok",
                     "detail": "diff 20261122-013000F_20261122-090000D, ended 2026-11-22 09:00 UTC (3 h ago), "
                               "35.0 MiB; WAL archived up to 000000010000000000000007"}]
    none = runner.backup_rows(summary, {"media1": pgbackrest_info()}, NOW)
    assert none[0]["state"] == "none" and none[0]["detail"] == "no backup yet (ok)"


def test_status_through_the_master_asks_each_tier_and_prints_one_table(tmp_path, monkeypatch):
    """status() with canned answers for every call it makes: app2's uWSGI
    is stopped, so its upstream is down and its vassal has no workers."""
    site = site_dir(tmp_path, "three-tier")
    asked = []

    def call(hosts, fun, arg=(), kwarg=None, timeout=None):
        asked.append((fun, tuple(hosts)))
        if fun == "saltutil.sync_modules":
            assert kwarg == {"saltenv": ENV}
            return {h: [] for h in hosts}
        if fun == "test.ping":
            return {h: True for h in hosts}
        if fun == "stackstatus.probe_upstreams":
            return {h: [{**t, **({"error": "Connection refused", "seconds": 0} if t["server"].startswith("10.77.0.12")
                                 else {"status": 200 if t["kind"] == "app" else 404, "seconds": 0.01})}
                        for t in arg[0]] for h in hosts}
        if fun == "stackstatus.uwsgi_stats":
            assert arg == [["demo"], "/run/uwsgi-stats"]
            return {"app1": {"demo": uwsgi_answer(["idle"] * 4)}, "app2": {"demo": {"error": "No such file"}}}
        if fun == "cmd.run_all" and arg[0][0] == "psql":
            assert kwarg["runas"] == "postgres" and arg[0][:3] == ["psql", "-p", "5432"]
            return {h: database_answer(False) for h in hosts}
        if fun == "stackstatus.memcached_stats":
            assert arg == ["10.77.0.20", 11211]
            return {h: {"get_hits": "3", "get_misses": "1", "bytes": "100", "limit_maxbytes": "1024",
                        "curr_connections": "2"} for h in hosts}
        if fun == "status.diskusage":
            return {h: {p: {"total": 100, "available": 50} for p in arg} for h in hosts}
        if fun == "cmd.run_all" and arg[0][0] == "pgbackrest":
            assert arg[0][1] == "--stanza=main"
            return {h: pgbackrest_info(("20261122-013000F", "full", int(NOW.timestamp()))) for h in hosts}
        raise AssertionError(f"unexpected call {fun} {arg}")

    monkeypatch.setattr(runner, "__opts__", {**roots(site), "conf_file": "/dev/null"}, raising=False)
    monkeypatch.setattr(runner, "_call", call)
    rows = runner.status(data=True)
    states = {(r["tier"], r["host"], r["what"]): r["state"] for r in rows}
    assert states == {
        ("loadbalancer", "lb1", "demo app app1 (10.77.0.11:8000)"): "up",
        ("loadbalancer", "lb1", "demo app app2 (10.77.0.12:8000)"): "down",
        ("loadbalancer", "lb1", "demo media media1 (10.77.0.30:8080)"): "up",
        ("app", "app1", "uwsgi demo"): "up",
        ("app", "app2", "uwsgi demo"): "down",
        ("database", "db1", "postgres leader"): "up",
        ("cache", "db1", "memcached"): "up",
        ("disk", "db1", "/var/lib/postgresql"): "ok",
        ("disk", "media1", "/srv/media"): "ok",
        ("disk", "media1", "/var/lib/pgbackrest"): "ok",
        ("disk", "media1", "/var/lib/media-backups"): "ok",
        ("backup", "media1", "last backup"): "ok",
    }
    # No Patroni on three-tier: patronictl is not asked.
    assert "saltutil.sync_modules" == asked[0][0] and not any("patroni" in str(a) for a in asked)
    text = runner.status()
    assert text.splitlines()[0].split() == ["TIER", "HOST", "WHAT", "STATE", "DETAIL"]
    assert len(text.splitlines()) == len(rows) + 1


def test_status_names_hosts_that_do_not_answer():
    rows = runner.status_rows(status_summary("three-tier"), {"answered": {"lb1", "app1", "db1", "media1"}}, NOW)
    assert rows[0] == {"tier": "salt", "host": "app2", "what": "minion", "state": "down",
                       "detail": "no answer to test.ping"}


# --- the probes, against local stand-ins ------------------------------------------------------

def serve_once(server, answer, read=True):
    """Accept one connection on ``server``, read what the client sends
    (returned in a list; read=False: nothing, as uWSGI's stats server
    writes at once), answer ``answer(request)`` and close."""
    got = []

    def run():
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            data = conn.recv(65536) if read else b""
            got.append(data)
            conn.sendall(answer(data))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return got, thread


def uwsgi_variables(packet):
    modifier1, size, modifier2 = struct.unpack("<BHB", packet[:4])
    body, found = packet[4:4 + size], {}
    while body:
        (klen,), body = struct.unpack("<H", body[:2]), body[2:]
        key, body = body[:klen].decode(), body[klen:]
        (vlen,), body = struct.unpack("<H", body[:2]), body[2:]
        found[key], body = body[:vlen].decode(), body[vlen:]
    return modifier1, modifier2, found


def test_an_app_upstream_is_asked_the_health_check_over_the_uwsgi_protocol():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        got, thread = serve_once(server, lambda _: b"HTTP/1.1 503 Service Unavailable\r\n\r\n{}")
        result = probes.probe_upstreams([{"server": f"127.0.0.1:{port}", "protocol": "uwsgi", "host": "www.example.com",
                                          "path": "/healthz", "scheme": "https", "kind": "app"}])
        thread.join(5)
    modifier1, modifier2, variables = uwsgi_variables(got[0])
    assert (modifier1, modifier2) == (0, 0)
    assert {k: variables[k] for k in ("REQUEST_METHOD", "PATH_INFO", "HTTP_HOST", "HTTP_X_FORWARDED_PROTO", "HTTPS")} \
        == {"REQUEST_METHOD": "GET", "PATH_INFO": "/healthz", "HTTP_HOST": "www.example.com",
            "HTTP_X_FORWARDED_PROTO": "https", "HTTPS": "on"}
    assert result[0]["status"] == 503 and "error" not in result[0]


def test_an_upstream_that_refuses_is_down():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    result = probes.probe_upstreams([{"server": f"127.0.0.1:{port}", "protocol": "http", "host": "x", "path": "/"}])
    assert result[0]["error"] and "status" not in result[0]


def test_memcached_stats_are_read_as_memcached_sends_them():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        got, thread = serve_once(server, lambda _: b"STAT get_hits 5\r\nSTAT version 1.6.38\r\nEND\r\n")
        stats = probes.memcached_stats("127.0.0.1", port)
        thread.join(5)
    assert got == [b"stats\r\n"]
    assert stats == {"get_hits": "5", "version": "1.6.38"}


def test_uwsgi_stats_come_from_each_vassals_socket(tmp_path):
    stats_dir = tmp_path / "stats"
    (stats_dir / "demo").mkdir(parents=True)
    (stats_dir / "stopped").mkdir()
    path = str(stats_dir / "demo" / "stats.sock")
    if len(path) > 100:  # AF_UNIX paths are short
        pytest.skip("temporary path too long for a unix socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen()
        _, thread = serve_once(server, lambda _: b'{"workers": []}', read=False)
        result = probes.uwsgi_stats(["demo", "stopped"], str(stats_dir))
        thread.join(5)
    assert result["demo"] == {"stats": '{"workers": []}'}
    assert "No such file" in result["stopped"]["error"]
    assert os.path.exists(path)


# -- The rolling deploy's wait (formulas/_states/uwsgi_vassal.py) --------------

vassal_state = load("formulas/_states/uwsgi_vassal.py", "uwsgi_vassal")


def serve_forever(server, answers, read=True):
    """Answers each connection with the next of ``answers`` (the last one
    repeated) until the server socket is closed."""
    def run():
        count = 0
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                if read:
                    conn.recv(65536)
                conn.sendall(answers[min(count, len(answers) - 1)])
                count += 1
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def vassal(tmp_path):
    """The state's dunders (the real probes), a vassal ini and the path of
    its stats socket: (ini, stats_dir, stats socket path)."""
    stats_dir = tmp_path / "stats"
    (stats_dir / "demo").mkdir(parents=True)
    ini = tmp_path / "demo.ini"
    ini.write_text("[uwsgi]\n")
    path = str(stats_dir / "demo" / "stats.sock")
    if len(path) > 100:  # AF_UNIX paths are short
        pytest.skip("temporary path too long for a unix socket")
    vassal_state.__opts__ = {"test": False}
    vassal_state.__salt__ = {"stackstatus.uwsgi_stats": probes.uwsgi_stats,
                             "stackstatus.probe_upstreams": probes.probe_upstreams}
    return ini, stats_dir, path


def test_a_reloaded_vassal_serves_once_new_workers_answer_its_health_check(vassal):
    """Workers spawned before the ini changed, then new ones; the health
    check first 500 then 200: the state waits for both, and changes nothing."""
    ini, stats_dir, path = vassal
    changed_at = int(ini.stat().st_mtime)
    old = json.dumps({"workers": [{"id": 1, "last_spawn": changed_at - 60}, {"id": 2, "last_spawn": changed_at}]})
    new = json.dumps({"workers": [{"id": 1, "last_spawn": changed_at}, {"id": 2, "last_spawn": changed_at + 1}]})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stats, \
            socket.create_server(("127.0.0.1", 0)) as app:
        stats.bind(path)
        stats.listen()
        serve_forever(stats, [old.encode(), old.encode(), new.encode()], read=False)
        serve_forever(app, [b"HTTP/1.1 500 Internal Server Error\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"])
        ret = vassal_state.serving("demo", str(ini), str(stats_dir), f"127.0.0.1:{app.getsockname()[1]}",
                                   path="/healthz", host="www.example.com", timeout=20)
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert "answered 200 to GET /healthz" in ret["comment"]


def test_a_vassal_that_never_serves_fails_the_run_saying_what_it_saw(vassal, tmp_path):
    ini, _stats_dir, _path = vassal
    ret = vassal_state.serving("demo", str(ini), str(tmp_path / "no-stats"), "127.0.0.1:9", timeout=1)
    assert ret["result"] is False
    assert "vassal demo not serving after 1 s: stats:" in ret["comment"] and "No such file" in ret["comment"]
    vassal_state.__opts__ = {"test": True}
    assert vassal_state.serving("demo", str(ini), str(tmp_path), "127.0.0.1:9")["result"] is None


def test_a_vassal_whose_database_is_down_still_serves_its_new_code(vassal):
    """503 from the health view: the app runs and answers, a dependency is
    down (a database that does not let a new host in yet): not the
    release's fault, so the run goes on, saying so."""
    ini, stats_dir, path = vassal
    fresh = json.dumps({"workers": [{"id": 1, "last_spawn": int(ini.stat().st_mtime)}]})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stats, \
            socket.create_server(("127.0.0.1", 0)) as app:
        stats.bind(path)
        stats.listen()
        serve_forever(stats, [fresh.encode()], read=False)
        serve_forever(app, [b"HTTP/1.1 503 Service Unavailable\r\n\r\n"])
        ret = vassal_state.serving("demo", str(ini), str(stats_dir), f"127.0.0.1:{app.getsockname()[1]}",
                                   path="/healthz", timeout=20)
    assert ret["result"] is True and ret["changes"] == {}
    assert "answered 503 to GET /healthz" in ret["comment"]
    assert "(a dependency of the app is down)" in ret["comment"]

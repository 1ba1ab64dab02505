"""replicated: three Patroni members (database + dcs) beside a web host.

Replication, read routing by the server's own counters, a stopped replica,
a switchover and a hard-killed leader, all through the load balancer."""
import json
import threading
import time

import pytest
import yaml

import stack_checks as checks
from tests.layouts import REPO

pytestmark = pytest.mark.layout("replicated")

PATRONI_DEFAULTS = yaml.safe_load((REPO / "formulas" / "patroni" / "defaults.yaml").read_text())["patroni"]


def members(topology):
    return checks.hosts_with(topology, "database")


def cluster(lab, topology):
    """patroni-cluster list as JSON, asked of the first member that answers."""
    for host in members(topology):
        got = lab.exec(host, "/usr/local/sbin/patroni-cluster list -f json")
        if got.returncode == 0:
            return json.loads(got.stdout)
    raise AssertionError("no member answers patroni-cluster list")


def wait_streaming(lab, topology, timeout=120):
    """Until every member runs: one leader, the others streaming from it,
    as many of them synchronous as pillar asks."""
    dcs = PATRONI_DEFAULTS["dcs"]
    replicas = len(members(topology)) - 1
    sync_wanted = min(dcs["synchronous_node_count"], replicas) if dcs["synchronous_mode"] else 0
    deadline = time.monotonic() + timeout
    while True:
        view = cluster(lab, topology)
        leaders = [m for m in view if m["Role"] == "Leader" and m["State"] == "running"]
        streaming = [m for m in view if m["Role"] != "Leader" and m["State"] == "streaming"]
        sync = [m for m in streaming if m["Role"] == "Sync Standby"]
        if len(leaders) == 1 and len(streaming) == replicas and len(sync) == sync_wanted:
            return leaders[0]["Member"]
        if time.monotonic() > deadline:
            raise AssertionError(f"cluster not streaming after {timeout}s: {view}")
        time.sleep(1)


def lb(lab, topology):
    return lab.address(checks.hosts_with(topology, "loadbalancer")[0])


def write_visit(lab, topology, timeout=10):
    got = checks.request(lb(lab, topology), "/api/visits", "POST", b"", timeout=timeout)
    assert got.status == 201, got.text[:300]
    return json.loads(got.body)["id"]


def demo_counters(lab, host):
    """This server's own view of the demo database: (commits, rows inserted)."""
    row = checks.sql_on(lab, host, "SELECT xact_commit, tup_inserted FROM pg_stat_database WHERE datname = 'demo'")
    commits, inserted = row.split("|")
    return int(commits), int(inserted)


def counters(lab, hosts):
    # An idle backend reports its counters within PostgreSQL's idle stats
    # interval (10 s); the app's connections stay open.
    time.sleep(11)
    return {host: demo_counters(lab, host) for host in hosts}


class TestReplicated(checks.LayoutSuite):

    def test_every_replica_streams_with_the_sync_state_asked_for(self, lab, topology):
        leader = wait_streaming(lab, topology)
        rows = checks.sql_on(lab, leader, "SELECT application_name, state, sync_state FROM pg_stat_replication"
                                          " ORDER BY application_name", "postgres").splitlines()
        replicas = sorted(set(members(topology)) - {leader})
        assert [r.split("|")[:2] for r in rows] == [[r, "streaming"] for r in replicas], rows
        dcs = PATRONI_DEFAULTS["dcs"]
        assert dcs["synchronous_mode"] is True
        states = sorted(r.split("|")[2] for r in rows)
        want = dcs["synchronous_node_count"]
        assert states.count("sync") == want and states.count("async") == len(replicas) - want, rows

    def test_only_database_members_open_a_replication_connection(self, lab, topology, say):
        """The app host reaches PostgreSQL's port (it must), and holds the
        right replication password here: pg_hba still refuses it a
        physical replication connection (what a replica opens), which
        members get."""
        app = checks.hosts_with(topology, "app")[0]
        user = checks.formula_defaults("patroni")["users"]["replication"]
        password = checks.site_secrets(lab)["patroni"]["replication"]
        leader = checks.leader(lab, topology)
        probe = ("import sys, psycopg\n"
                 "try:\n"
                 "    psycopg.connect(host=sys.argv[1], user=sys.argv[2], password=sys.argv[3], dbname='postgres',"
                 " replication='true', connect_timeout=10).close()\n"
                 "    print('connected')\n"
                 "except psycopg.OperationalError as exc:\n"
                 "    print(exc)\n")
        run = lab.exec(app, ["/srv/apps/demo/venv/bin/python", "-c", probe, lab.address(leader), user, password],
                       check=True)
        say(f"replication connection from {app}: {run.stdout.strip()}")
        assert "no pg_hba.conf entry for replication connection" in run.stdout, run.stdout
        # While every other member streams from the leader.
        assert wait_streaming(lab, topology) == leader

    def test_a_row_written_through_the_site_is_on_every_replica_within_a_second(self, lab, topology, say):
        leader = wait_streaming(lab, topology)
        replicas = [h for h in members(topology) if h != leader]
        visit = write_visit(lab, topology)
        acked = time.time()
        seen = {}

        def poll(host):
            # Polls inside the replica; prints the wall clock when the row is there.
            out = lab.exec(host, f"for i in $(seq 500); do [ \"$(runuser -u postgres -- psql -d demo -AtXc "
                                 f"'SELECT 1 FROM visits_visit WHERE id = {visit}')\" = 1 ] && "
                                 f"{{ date +%s.%N; exit 0; }}; sleep 0.005; done; exit 1", timeout=60)
            seen[host] = float(out.stdout) - acked if out.returncode == 0 else None

        threads = [threading.Thread(target=poll, args=(h,)) for h in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        say(f"row {visit}: seconds after the 201 until each replica had it: {seen}")
        assert all(s is not None and s < 1.0 for s in seen.values()), seen

    def test_reads_reach_replicas_and_writes_the_leader(self, lab, topology, say):
        leader = wait_streaming(lab, topology)
        replicas = [h for h in members(topology) if h != leader]
        before = counters(lab, members(topology))
        ids = [write_visit(lab, topology) for _ in range(40)]
        after_writes = counters(lab, members(topology))
        for visit in ids:
            got = checks.request(lb(lab, topology), f"/api/visits/{ids[0]}")
            assert got.status == 200, got.text[:300]
        after_reads = counters(lab, members(topology))
        inserted = {h: after_writes[h][1] - before[h][1] for h in members(topology)}
        read_commits = {h: after_reads[h][0] - after_writes[h][0] for h in members(topology)}
        say(f"rows inserted per member during 40 writes: {inserted}; "
            f"commits per member during 40 reads: {read_commits}")
        assert inserted[leader] >= len(ids), inserted
        assert sum(read_commits[h] for h in replicas) >= len(ids), read_commits
        assert read_commits[leader] < len(ids) / 4, read_commits

    def test_with_the_replicas_stopped_the_site_answers_and_reads_fall_back(self, lab, topology, say):
        leader = wait_streaming(lab, topology)
        replicas = [h for h in members(topology) if h != leader]
        service = sorted(checks.expected(lab.host(leader), topology, "database", "services"))[0]
        for host in replicas:
            lab.exec(host, f"systemctl stop {service}", check=True)
        try:
            ids = [write_visit(lab, topology, timeout=30) for _ in range(5)]
            before = counters(lab, [leader])[leader][0]
            statuses = [checks.request(lb(lab, topology), f"/api/visits/{ids[-1]}").status for _ in range(30)]
            after = counters(lab, [leader])[leader][0]
            say(f"replicas stopped: 5 writes acknowledged, 30 reads {statuses.count(200)} x 200, "
                f"leader commits during the reads {after - before}")
            assert statuses == [200] * 30
            assert after - before >= 30
        finally:
            for host in replicas:
                lab.exec(host, f"systemctl start {service}", check=True)
        wait_streaming(lab, topology)

    def test_a_switchover_to_a_named_member_then_a_reapply_changes_nothing(self, lab, topology, say):
        leader = wait_streaming(lab, topology)
        view = cluster(lab, topology)
        candidate = next(m["Member"] for m in view if m["Role"] == "Sync Standby")
        result = lab.run_orchestrate("orchestrate.database", pillar={"switchover_to": candidate})
        say(f"switchover {leader} -> {candidate}: {result.seconds:.1f} s")
        assert wait_streaming(lab, topology) == candidate
        assert checks.leader(lab, topology) == candidate
        assert lab.highstate() == {host: 0 for host in lab.hosts}
        # Asked again, the switchover changes nothing.
        again = lab.run_orchestrate("orchestrate.database", pillar={"switchover_to": candidate})
        assert again.changed.get(candidate, 0) == 0
        checks.check_site(lab, topology)

    def test_failover_drill_loses_no_acknowledged_write(self, lab, topology, say):
        leader = wait_streaming(lab, topology)
        address = lb(lab, topology)
        log = []  # (seconds since start, row id or None)
        stop = threading.Event()
        start = time.monotonic()

        def writes():
            # Bounded: at most 90 s and 3000 requests.
            while not stop.is_set() and time.monotonic() - start < 90 and len(log) < 3000:
                t = time.monotonic() - start
                try:
                    got = checks.request(address, "/api/visits", "POST", b"", timeout=5)
                    row = json.loads(got.body)["id"] if got.status == 201 else None
                except (OSError, ValueError):
                    row = None
                log.append((t, row))
                if row is None:
                    time.sleep(0.2)

        writer = threading.Thread(target=writes)
        writer.start()
        time.sleep(5)
        lab.kill(leader)
        # From here the leader is gone: a write started later cannot reach it
        # (one started before and answered during the kill is not counted
        # as after it, so it cannot pass for writes being back).
        killed_at = time.monotonic() - start
        # Writes again once 20 in a row succeed after the kill; then stop.
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline:
            after = [row for t, row in log if t > killed_at]
            if len(after) >= 20 and all(after[-20:]):
                break
            time.sleep(0.5)
        stop.set()
        writer.join()

        after_kill = [(t, row) for t, row in log if t > killed_at]
        failed = [t for t, row in after_kill if row is None]
        back_at = next((t for t, row in after_kill if row is not None and t > (failed[-1] if failed else 0)), None)
        acked = [row for _t, row in log if row is not None]
        surviving = [h for h in members(topology) if h != leader]
        new_leader = wait_streaming_without(lab, topology, leader)
        found = int(checks.sql_on(lab, new_leader, "SELECT count(*) FROM visits_visit WHERE id = ANY(ARRAY["
                                  + ",".join(map(str, acked)) + "]::bigint[])"))
        recovery = (back_at - killed_at) if back_at is not None else None
        say(f"failover drill: {leader} killed; new leader {new_leader}; sent {len(log)}, failed {len(failed)}, "
            f"acknowledged {len(acked)}, acknowledged found on the new leader {found}, "
            f"lost {len(acked) - found}; writes back after "
            f"{'never' if recovery is None else f'{recovery:.1f} s'}")
        assert new_leader in surviving
        assert found == len(acked), "acknowledged writes lost"
        assert recovery is not None and recovery <= 30, recovery

        # The old leader, started again, rejoins as a replica and refuses writes.
        lab.start(leader)
        assert wait_streaming(lab, topology, timeout=180) == new_leader
        refused = lab.exec(leader, ["runuser", "-u", "postgres", "--", "psql", "-d", "demo", "-AtXc",
                                    "INSERT INTO visits_visit (created, host, path) VALUES (now(), 'x', 'x')"])
        assert refused.returncode != 0 and "read-only transaction" in refused.stderr, refused
        # The new leader archives its WAL to the repository: no pillar change.
        if checks.hosts_with(topology, "backup"):
            checks.check_archiving(lab, topology)
        assert lab.highstate() == {host: 0 for host in lab.hosts}


def wait_streaming_without(lab, topology, gone, timeout=60):
    """The leader among the members other than ``gone`` (which is down)."""
    deadline = time.monotonic() + timeout
    while True:
        for host in members(topology):
            if host != gone and checks.sql_on(lab, host, "SELECT pg_is_in_recovery()", "postgres", check=False) == "f":
                return host
        if time.monotonic() > deadline:
            raise AssertionError(f"no leader among the members but {gone} after {timeout}s")
        time.sleep(1)

"""The scaling path as a live move: the database leaves the box that has
everything for a host of its own, by the README's procedure (pillar edits
and orchestrate runs), under a bounded read/write loop through the load
balancer. Every row written before, and every write acknowledged during
the move, is on the new host; the old host's data directory is kept."""
import time

import pytest
import yaml

import stack_checks as checks

pytestmark = pytest.mark.layout("growing")


def with_roles(topology, **roles):
    # Host order kept: the first database host is the one that bootstraps.
    changed = yaml.safe_load(yaml.safe_dump(topology, sort_keys=False))
    for host, held in roles.items():
        changed["hosts"][host]["roles"] = held
    return changed


def test_moving_the_database_to_its_own_host_keeps_every_row(lab, lab_topology, say):
    topology = checks.lab_layout(lab)
    address = lab.address("web1")
    for _ in range(20):
        assert checks.request(address, "/api/visits", "POST", b"").status == 201
    before = checks.sql(lab, topology, "SELECT count(*), max(id) FROM visits_visit")
    say(f"before the move (count, max id): {before}")
    everything = topology["hosts"]["web1"]["roles"]

    with checks.Traffic(address) as traffic:
        # 1. web1 also runs etcd (the dcs role); db1 joins as a second member.
        #    web1 comes first among the database hosts: its data becomes the
        #    cluster's, db1 clones it.
        step1 = with_roles(topology, web1=everything + ["dcs"], db1=["database"])
        lab_topology(yaml.safe_dump({"topology": step1}, sort_keys=False))
        lab.run_orchestrate()
        # 2. A planned switchover makes db1 the leader.
        lab.run_orchestrate("orchestrate.database", pillar={"switchover_to": "db1"})
        # 3. web1 leaves the database role: its member stops, its data stays.
        step3 = with_roles(step1, web1=[r for r in step1["hosts"]["web1"]["roles"] if r != "database"])
        lab_topology(yaml.safe_dump({"topology": step3}, sort_keys=False))
        lab.run_orchestrate()
        time.sleep(3)

    acked = traffic.acked
    say(f"during the move: sent {traffic.sent}, failed {traffic.failed}, acknowledged writes {len(acked)}; "
        f"failures (s, kind, why): {traffic.failures[:30]}")
    assert checks.leader(lab, step3) == "db1"
    after = checks.sql(lab, step3, "SELECT count(*) FROM visits_visit")
    found = checks.sql(lab, step3, "SELECT count(*) FROM visits_visit WHERE id = ANY(ARRAY["
                       + ",".join(map(str, acked or [0])) + "]::bigint[])")
    count_before, max_before = map(int, before.split("|"))
    old_rows = checks.sql(lab, step3, f"SELECT count(*) FROM visits_visit WHERE id <= {max_before}")
    say(f"rows before {count_before}, rows of then still there {old_rows}, acknowledged found {found}, "
        f"lost {len(acked) - int(found)}, rows after {after}")
    assert int(old_rows) == count_before
    assert int(found) == len(acked)
    assert int(after) >= count_before + len(acked)

    # The old host keeps its data directory; its member is stopped and off at boot.
    web1 = lab.host("web1")
    service = sorted(checks.expected(web1, step1, "database", "services"))[0]
    version = service.split("@")[1].split("-")[0]
    assert web1.file(f"/var/lib/postgresql/{version}/main/PG_VERSION").exists
    assert not web1.service(service).is_running and not web1.service(service).is_enabled
    assert not web1.service(f"postgresql@{version}-main").is_running
    # db1 holds exactly the database; web1 runs its other roles (and keeps
    # the database's packages with its data, as retiring a role does).
    checks.check_roles_exactly(lab, step3, only=["db1"])
    for role in step3["hosts"]["web1"]["roles"]:
        for name in checks.expected(web1, step3, role, "services"):
            assert web1.service(name).is_running, (role, name)
    checks.check_site(lab, step3)
    assert lab.highstate() == {host: 0 for host in lab.hosts}

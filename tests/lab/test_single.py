"""single: every role on one box; a box with no master at all; then the
scaling path's first move, the database to a host of its own."""
import time

import pytest
import yaml

import stack_checks as checks
from stacklab.site import write_site
from tests.layouts import REPO

# Debian 12 (LTS): the formulas choose their versions per release.
pytestmark = pytest.mark.layout("single", release="bookworm")


class TestSingle(checks.LayoutSuite):

    def test_a_box_with_no_master_converges_with_salt_call_local_and_serves_the_site(self, lab, say):
        """README's "Masterless": box1 (the single layout's roles, no
        topology:salt_master) has this repository, a site pillar root and
        salt/masterless.conf, and no master; `salt-call --local state.apply`
        deploys it, and a second run changes nothing."""
        layout = checks.lab_layout(lab)
        (web,) = layout["hosts"]
        address = checks.free_address(lab, layout)
        topology = {"network": layout["network"], "admin_networks": layout["admin_networks"],
                    "hosts": {"box1": {"address": address, "roles": layout["hosts"][web]["roles"]}}}
        site_dir = write_site(lab.dir / "masterless-site", REPO, yaml.safe_dump({"topology": topology}))
        lab.masterless("box1", address, site_dir)
        try:
            first = lab.salt_call_local("box1", "state.apply")
            second = lab.salt_call_local("box1", "state.apply")
            say(f"masterless box1: first run {first['states']} states, {first['changed']} changed, "
                f"{first['failed']} failed; second run {second['changed']} changed, {second['failed']} failed")
            assert first["failed"] == 0, first["failures"]
            assert first["changed"] > 0
            assert (second["changed"], second["failed"]) == (0, 0), second["failures"]
            assert lab.exec("box1", "systemctl is-enabled salt-minion").stdout.strip() != "enabled"
            checks.wait_healthy(lab, topology)
            checks.check_site(lab, topology)
        finally:
            lab.leave("box1")


def with_roles(topology, **roles):
    # Host order kept: the first database host is the one that bootstraps.
    changed = yaml.safe_load(yaml.safe_dump(topology, sort_keys=False))
    for host, held in roles.items():
        changed["hosts"][host]["roles"] = held
    return changed


@pytest.mark.layout("single", release="bookworm")
def test_moving_the_database_to_a_host_of_its_own_keeps_every_row(lab, lab_topology, say):
    """The scaling path as a live move, after the box's own checks: db1, a
    new server, joins by booting (README), then the database leaves the box
    for it by the README's procedure (pillar edits and orchestrate runs),
    under a bounded read/write loop through the load balancer. Every row
    written before, and every write acknowledged during the move, is on
    db1; the box's data directory is kept."""
    single = checks.lab_layout(lab)
    topology = yaml.safe_load(yaml.safe_dump(single, sort_keys=False))
    topology["hosts"]["db1"] = {"address": checks.free_address(lab, single), "roles": []}
    lab_topology(yaml.safe_dump({"topology": topology}, sort_keys=False), joining=["db1"])
    boot = lab.join("db1", topology["hosts"]["db1"]["address"])
    say(f"db1 joined: its first highstate changed {boot['changed']}, failed {boot['failed']}")
    assert boot["failed"] == 0, boot["failures"]
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
    assert lab.highstate() == {host: 0 for host in [*lab.hosts, "db1"]}

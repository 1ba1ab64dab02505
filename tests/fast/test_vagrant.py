"""The Vagrantfile's inputs, without containers: what `./lab vagrant-site`
prepares for each layout (one machine per topology host, the master's
address, a site pillar root the pillar accepts, pre-seeded keys), the
report the master prints after the ordered deploy, and the machines
Vagrant itself reads from the Vagrantfile."""
import json
import os
import shutil
import subprocess

import pytest
import yaml

from stacklab.saltctl import format_orchestrate, parse_orchestrate
from stacklab.util import LabError
from stacklab.vagrant import parse_report, prepare, report
from tests.layouts import LAYOUTS, LAYOUTS_DIR, REPO, load_layout


@pytest.mark.parametrize("layout", LAYOUTS)
def test_prepare_gives_one_machine_per_topology_host(layout, tmp_path):
    config = prepare(layout, tmp_path)
    topology = load_layout(layout)
    assert [(h["id"], h["address"]) for h in config["hosts"]] == \
        [(h, spec["address"]) for h, spec in topology["hosts"].items()]
    # No salt_master in the example layouts yet: the network's .254, as the lab's master.
    assert config["master"] == topology.get("salt_master", topology["network"].rsplit(".", 1)[0] + ".254")
    site = tmp_path / layout / "site"
    assert sorted(p.name for p in site.iterdir()) == ["apps.sls", "overrides.sls", "secrets.sls", "topology.sls"]
    assert (site / "secrets.sls").stat().st_mode & 0o777 == 0o600
    assert "CHANGE-ME" not in (site / "secrets.sls").read_text()
    assert yaml.safe_load((site / "topology.sls").read_text()) == \
        yaml.safe_load((LAYOUTS_DIR / f"{layout}.sls").read_text())
    # The master is pre-seeded with exactly the hosts' public keys, and accepts no other.
    master = tmp_path / layout / "master"
    assert sorted(p.name for p in (master / "minions").iterdir()) == sorted(topology["hosts"])
    for host in topology["hosts"]:
        assert (master / "minions" / host).read_text() == (tmp_path / layout / "pki" / f"{host}.pub").read_text()
    conf = yaml.safe_load((master / "django-stack.conf").read_text())
    assert conf["auto_accept"] is False and conf["open_mode"] is False
    assert conf["pillar_roots"] == {"stack": ["/srv/site", "/srv/django-stack/pillar"]}
    assert "base" not in conf["file_roots"]


def test_prepare_keeps_keys_and_secrets(tmp_path):
    prepare("single", tmp_path)
    kept = {p.name: p.read_text() for d in ("pki", "site") for p in (tmp_path / "single" / d).iterdir()}
    prepare("single", tmp_path)
    assert {p.name: p.read_text() for d in ("pki", "site") for p in (tmp_path / "single" / d).iterdir()} == kept


def test_the_master_config_is_what_salt_loads(tmp_path):
    """Salt's own YAML loader refuses a key given twice (PyYAML keeps the last)."""
    import salt.utils.yaml

    prepare("single", tmp_path)
    conf = salt.utils.yaml.safe_load((tmp_path / "single" / "master" / "django-stack.conf").read_text())
    assert conf["file_roots"]["stack"] and conf["auto_accept"] is False


def _topology_file(tmp_path, salt_master):
    data = yaml.safe_load((LAYOUTS_DIR / "split.sls").read_text())
    data["topology"]["salt_master"] = salt_master
    path = tmp_path / "split-master.sls"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_the_master_address_is_topology_salt_master(tmp_path):
    assert prepare(_topology_file(tmp_path, "10.77.0.200"), tmp_path / "state")["master"] == "10.77.0.200"


@pytest.mark.parametrize("salt_master, why", [("web1", "machine of its own"), ("10.77.0.10", "free address")])
def test_a_master_on_a_topology_host_is_refused(tmp_path, salt_master, why):
    with pytest.raises(LabError, match=why):
        prepare(_topology_file(tmp_path, salt_master), tmp_path / "state")


def _orchestrate(steps):
    data = {f"salt_|-{sid}_|-{sid}_|-state": {"__id__": sid, "__run_num__": i, "result": ok, "comment": comment,
                                              "changes": {"ret": ret} if ret else {}}
            for i, (sid, ok, comment, ret) in enumerate(steps)}
    return json.dumps({"data": {"salt_master": data}})


CHANGED = {"file_|-x_|-/etc/x_|-managed": {"__id__": "x", "result": True, "changes": {"diff": "+"}, "__run_num__": 0}}


def test_the_report_counts_changed_states_per_host_and_every_host_must_report():
    raw = _orchestrate([
        ("host-check", True, "States ran successfully. No changes made to lb1, app1.", None),
        ("app", True, "States ran successfully. Updating app1.", {"app1": CHANGED}),
    ])
    lines, ok = report(raw, ["lb1", "app1"])
    assert ok
    # Vagrant prefixes each line of a provisioner's output with the machine's name.
    assert parse_report("\n".join(f"    salt: {line}" for line in lines)) == {
        "lb1": {"changed": 0, "failed": 0}, "app1": {"changed": 1, "failed": 0}}
    lines, ok = report(raw, ["lb1", "app1", "db1"])
    assert not ok and "django-stack deploy: host db1 did not report" in lines


def test_a_failed_deploy_fails_the_report():
    failed = {"x": {"__id__": "x", "result": False, "comment": "boom", "changes": {}, "__run_num__": 0}}
    lines, ok = report(_orchestrate([("app", False, "Run failed on minions: app1", {"app1": failed})]), ["app1"])
    assert not ok
    assert parse_report("\n".join(lines)) == {"app1": {"changed": 0, "failed": 1}}


def test_a_stopped_deploy_names_the_steps_still_running():
    """The ordered deploy's role steps run in parallel: when a failed step
    stops it (failhard on the step that needed it), Salt reports a step
    still running as started only. The report says so, and when each step
    started (steps at once overlap; a run may cross midnight)."""
    def step(sid, run_num, ok, comment, start, ms, parallel=True):
        return {"__id__": sid, "__run_num__": run_num, "result": ok, "comment": comment, "start_time": start,
                "duration": ms, "changes": {}, **({"__parallel__": True} if parallel else {})}
    data = {f"salt_|-{s['__id__']}_|-{s['__id__']}_|-state": s for s in [
        step("firewall", 0, True, "No changes made to db1, media1.", "23:59:59.000000", 1000, parallel=False),
        step("database", 1, False, "Run failed on minions: db1", "00:00:01.500000", 61000),
        step("media", 2, None, "Started in a separate process", "00:00:01.600000", 3.2, parallel=False),
        step("cache", 3, False, "One or more requisite failed: orchestrate.deploy.database", "00:01:02.600000", 0.1),
    ]}
    res = parse_orchestrate(subprocess.CompletedProcess([], 1, json.dumps({"data": {"salt_master": {
        **data, "__FAILHARD__": True}}}), ""))
    assert not res.ok
    assert [name for name, _ok, _comment in res.steps] == ["firewall", "database", "media", "cache"]
    assert res.step_start == pytest.approx({"firewall": 0, "database": 2.5, "media": 2.6, "cache": 63.6})
    assert "[media] still running when the deploy stopped: its result is not reported" in res.failures
    assert "  FAIL database   61.0s  from    2.5s" in format_orchestrate(res).splitlines()


def test_steps_started_at_once_count_from_the_earliest():
    """The first steps run at once: one listed later may have started a
    moment earlier. Offsets count from the earliest start, never negative
    and never a day off."""
    data = {f"salt_|-{sid}_|-{sid}_|-function": {"__id__": sid, "__run_num__": n, "result": True, "comment": "",
                                                 "start_time": start, "duration": 900, "changes": {}}
            for n, (sid, start) in enumerate([("host-check", "10:00:00.300000"), ("refresh-pillar", "10:00:00.100000"),
                                               ("firewall", "10:00:01.500000")])}
    res = parse_orchestrate(subprocess.CompletedProcess([], 0, json.dumps({"data": {"salt_master": data}}), ""))
    assert res.step_start == pytest.approx({"host-check": 0.2, "refresh-pillar": 0, "firewall": 1.4})


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed (./lab installs it)")
def test_vagrant_reads_one_machine_per_host_plus_the_master(tmp_path):
    env = dict(os.environ, LAYOUT="three-tier", VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"),
               VAGRANT_CHECKPOINT_DISABLE="1")
    r = subprocess.run(["vagrant", "status", "--machine-readable"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    machines = [line.split(",")[1] for line in r.stdout.splitlines() if line.split(",")[2:3] == ["state"]]
    assert machines == [*load_layout("three-tier")["hosts"], "salt"]

"""The lab itself: bring-up, caches, reachability, systemd, teardown.

Uses tests/lab/topologies/trio.sls (three hosts, never deployed), so these
tests do not depend on the formulas.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest

from stacklab import images
from stacklab.lab import Lab
from stacklab.util import LabError

pytestmark = pytest.mark.layout("trio", deploy=False)

LAYOUT = "trio"


def _docker_ids(*args: str) -> list[str]:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout
    return out.split()


def _run_cli(args: list[str], env: dict, say, timeout: float) -> float:
    """Run `python -m stacklab ARGS`, relaying its progress; return seconds."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "stacklab", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            say("    | " + line.rstrip())
        rc = proc.wait()
    finally:
        timer.cancel()
    took = time.monotonic() - start
    assert rc == 0, f"stacklab {' '.join(args)} exited {rc} after {took:.0f}s (timeout {timeout}s)"
    return took


def test_cold_up_then_warm_up_is_3x_faster(lab_session, repo, say, record_timing):
    """A cold `up` (empty cache dir, new image names: debootstrap, wheelhouses,
    image builds) against a warm one after `down`."""
    if os.environ.get("STACKLAB_SKIP_COLD") == "1":
        pytest.skip("STACKLAB_SKIP_COLD=1")
    lab_session.release()
    tag = uuid.uuid4().hex[:8]
    cache = repo / ".lab" / f"cold-cache-{tag}"
    prefix = f"stacklabcold{tag}"
    assert not cache.exists()
    env = dict(os.environ, STACKLAB_CACHE=str(cache), STACKLAB_IMAGE_PREFIX=prefix)
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    try:
        say(f"\n=== cold up: cache {cache}, image prefix {prefix} ===")
        cold = _run_cli(["up", LAYOUT, "--replace", "--fresh"], env, say, timeout=2400)
        built = _docker_ids("images", "-q", f"{prefix}-base")
        assert built, "the cold up did not build its own base image"
        _run_cli(["down", LAYOUT], env, say, timeout=300)
        say("=== warm up ===")
        warm = _run_cli(["up", LAYOUT], env, say, timeout=600)
        record_timing("lab up, cold (empty cache, images built)", cold)
        record_timing("lab up, warm (cached images and wheelhouse)", warm)
        say(f"cold up {cold:.1f}s, warm up {warm:.1f}s: {cold / warm:.1f}x faster")
        assert cold >= 3 * warm, f"warm up {warm:.1f}s is not 3x faster than cold up {cold:.1f}s"
    finally:
        subprocess.run([sys.executable, "-m", "stacklab", "down", LAYOUT], env=env,
                       capture_output=True, timeout=300)
        images.remove_images(prefix)
        shutil.rmtree(cache, ignore_errors=True)


def test_every_host_answers_test_ping(lab):
    assert lab.salt("*", "test.ping") == {h: True for h in lab.hosts}


def test_hosts_reach_each_other_by_address(lab):
    failures = []
    for src in lab.hosts:
        for dst in lab.hosts:
            if src == dst:
                continue
            r = lab.exec(src, ["ping", "-c1", "-W3", lab.address(dst)], timeout=30)
            if r.returncode != 0:
                failures.append(f"{src} -> {dst} ({lab.address(dst)}): {r.stdout.strip()[-200:]}")
    assert not failures, "\n".join(failures)


def test_systemd_is_running_everywhere(lab):
    bad = {}
    for h in [*lab.hosts, "salt"]:
        state = lab.exec(h, "systemctl is-system-running").stdout.strip()
        if state != "running":
            bad[h] = f"{state}: " + lab.exec(h, "systemctl --failed --no-legend --plain").stdout.strip()
    assert not bad, bad


def test_hostname_is_the_minion_id(hosts, lab):
    for h, host in hosts.items():
        assert host.check_output("hostname") == h
        assert host.check_output("sed -n 's/^id: //p' /etc/salt/minion.d/stacklab.conf") == h
    assert lab.salt("*", "grains.get", "id") == {h: h for h in lab.hosts}


def test_salt_minion_runs_under_systemd(hosts):
    for host in hosts.values():
        svc = host.service("salt-minion")
        assert svc.is_running and svc.is_enabled


def test_minion_keys_are_preseeded_not_auto_accepted(lab):
    keys = json.loads(lab.exec("salt", "salt-key --out=json -L", check=True).stdout)
    assert sorted(keys["minions"]) == sorted(lab.hosts)
    assert not keys.get("minions_pre") and not keys.get("minions_rejected")
    conf = lab.exec("salt", "cat /etc/salt/master.d/stacklab.conf", check=True).stdout
    assert "auto_accept: false" in conf


def test_master_roots_are_the_repo_read_only(lab, repo):
    ls = lab.exec("salt", "ls /srv/salt /srv/formulas /srv/pillar /srv/lab-pillar", check=True).stdout
    for name in ("layouts", "topology.sls", "secrets.sls", "overrides.sls"):
        assert name in ls
    r = lab.exec("salt", "touch /srv/salt/.stacklab-write-test")
    assert r.returncode != 0 and "Read-only" in r.stderr


def test_lab_pillar_files(lab, repo):
    pillar = repo / ".lab" / LAYOUT / "pillar"
    assert (pillar / "secrets.sls").stat().st_mode & 0o777 == 0o600
    assert "alpha" in (pillar / "topology.sls").read_text()
    served = lab.exec("salt", "cat /srv/lab-pillar/overrides.sls", check=True).stdout
    assert "find_links: /srv/stacklab/wheelhouse" in served


def test_set_topology_is_live_and_restored(lab, lab_topology):
    moved = (lab.topology.text.replace("roles: [loadbalancer]", "roles: []")
             .replace("bravo:\n      address: 10.77.0.12\n      roles: []",
                      "bravo:\n      address: 10.77.0.12\n      roles: [loadbalancer]"))
    assert moved != lab.topology.text
    lab_topology(moved)
    assert "roles: [loadbalancer]" in lab.exec("salt", "grep -A2 bravo: /srv/lab-pillar/topology.sls").stdout
    with pytest.raises(LabError):
        lab.set_topology(moved.replace("charlie:", "delta:"))
    lab.restore_topology()
    served = lab.exec("salt", "cat /srv/lab-pillar/topology.sls", check=True).stdout
    assert served.endswith(lab.topology.text)


def test_wheelhouse_is_mounted_read_only_on_every_host(hosts):
    for host in hosts.values():
        d = host.file("/srv/stacklab/wheelhouse")
        assert d.is_directory
        assert host.run("touch /srv/stacklab/wheelhouse/x").rc != 0


def test_apt_goes_through_the_lab_cache(lab):
    conf = lab.exec("bravo", "cat /etc/apt/apt.conf.d/01stacklab-proxy", check=True).stdout
    assert f"http://{lab.address('aptproxy')}:3142" in conf
    r = lab.exec("bravo", "apt-get update -q", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    log = lab.exec("aptproxy", "cat /var/log/apt-cacher-ng/apt-cacher.log", check=True).stdout
    assert lab.address("bravo") in log


def test_load_balancer_port_is_published_on_localhost(lab):
    url = lab.url
    assert url and url.startswith("http://127.0.0.1:")
    lab.exec("alpha", "systemd-run --unit=stacklab-probe python3 -m http.server 80 --directory /etc",
             check=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "hostname", timeout=3) as resp:
                    assert resp.read().decode().strip() == "alpha"
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        lab.exec("alpha", "systemctl stop stacklab-probe")


def test_status_lists_the_lab(lab, repo):
    out = subprocess.run([sys.executable, "-m", "stacklab", "status"], capture_output=True, text=True,
                         cwd=repo, timeout=120, check=True).stdout
    for h in lab.hosts:
        assert f"stacklab-{LAYOUT}-{h}" in out
    assert "running" in out and lab.url in out


def test_up_of_another_layout_is_refused(lab):
    with pytest.raises(LabError, match="another lab is up"):
        Lab("single").up()


def test_down_leaves_nothing_behind(lab, lab_session):
    lab_session.release()
    label = f"label=stacklab.layout={LAYOUT}"
    assert _docker_ids("ps", "-aq", "--filter", label) == []
    assert _docker_ids("network", "ls", "-q", "--filter", label) == []
    assert _docker_ids("network", "ls", "-q", "--filter", f"name=stacklab-{LAYOUT}") == []
    assert _docker_ids("volume", "ls", "-q", "--filter", label) == []
    assert _docker_ids("ps", "-aq", "--filter", f"name=stacklab-{LAYOUT}-") == []

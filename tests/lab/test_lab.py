"""The lab itself: bring-up on each Debian release, caches, reachability,
systemd, the site pillar root, the minion outside the topology, teardown.

Uses tests/lab/topologies/trio.sls (three hosts, one with an FQDN id, never
deployed), so these tests do not depend on the formulas.
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
import yaml

from stacklab import images
from stacklab.site import MAIL_RELAY_PORT
from stacklab.lab import Lab
from stacklab.util import LabError

pytestmark = pytest.mark.layout("trio", deploy=False, release="trixie")

LAYOUT = "trio"
FQDN = "charlie.example.internal"
PYTHON = {"trixie": "3.13", "bookworm": "3.11"}


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


@pytest.mark.slow
def test_cold_up_then_warm_up_is_3x_faster(lab_session, repo, say, record_timing):
    """A cold `up` of one release (empty cache dir, new image names:
    debootstrap, build image, Salt and app wheelhouses, image builds)
    against a warm one after `down`."""
    lab_session.release()
    tag = uuid.uuid4().hex[:8]
    cache = repo / ".lab" / f"cold-cache-{tag}"
    prefix = f"stacklabcold{tag}"
    assert not cache.exists()
    env = dict(os.environ, STACKLAB_CACHE=str(cache), STACKLAB_IMAGE_PREFIX=prefix)
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    try:
        say(f"\n=== cold up (trixie): cache {cache}, image prefix {prefix} ===")
        cold = _run_cli(["up", LAYOUT, "--release", "trixie", "--replace", "--fresh"], env, say, timeout=2400)
        built = [r for r in _docker_ids("images", "--format", "{{.Repository}}:{{.Tag}}")
                 if r.startswith(f"{prefix}-")]
        assert f"{prefix}-base" in {r.split(":")[0] for r in built}, built
        assert all(r.split(":")[1].startswith("trixie-") for r in built), f"not only trixie: {built}"
        _run_cli(["down", LAYOUT], env, say, timeout=300)
        say("=== warm up ===")
        warm = _run_cli(["up", LAYOUT, "--release", "trixie"], env, say, timeout=600)
        record_timing("lab up, cold, trixie (empty cache, images built)", cold)
        record_timing("lab up, warm, trixie (cached images and wheelhouses)", warm)
        say(f"cold up {cold:.1f}s, warm up {warm:.1f}s: {cold / warm:.1f}x faster")
        assert cold >= 3 * warm, f"warm up {warm:.1f}s is not 3x faster than cold up {cold:.1f}s"
    finally:
        subprocess.run([sys.executable, "-m", "stacklab", "down", LAYOUT], env=env,
                       capture_output=True, timeout=300)
        images.remove_images(prefix)
        shutil.rmtree(cache, ignore_errors=True)


def test_highstate_counts_topology_hosts_and_requires_the_outsider(monkeypatch):
    """No containers: highstate() parses canned salt output. The outsider
    must answer and is checked for failures, but the counts are per
    topology host (so `highstate() == {h: 0 for h in lab.hosts}` holds)."""
    lab = Lab(LAYOUT)
    own = {"file_|-outsider-was-here_|-/etc/outsider-was-here_|-managed":
           {"__id__": "outsider-was-here", "result": True, "changes": {}, "__run_num__": 0}}
    data = {h: {} for h in lab.hosts} | {lab.outsider: own}
    out = subprocess.CompletedProcess([], 0, json.dumps(data), "")
    monkeypatch.setattr(lab, "_heartbeat_exec", lambda *a, **kw: out)
    assert lab.highstate() == {h: 0 for h in lab.hosts}
    assert lab.state_ids(lab.outsider) == lab.outsider_state_ids == ["outsider-was-here"]
    del data[lab.outsider]
    out = subprocess.CompletedProcess([], 0, json.dumps(data), "")
    with pytest.raises(LabError, match="outsider: did not return"):
        lab.highstate()


def test_every_minion_answers_test_ping(lab):
    assert lab.minions == [*lab.hosts, "outsider"]
    assert lab.salt("*", "test.ping") == {h: True for h in lab.minions}


def test_every_container_runs_the_release(lab):
    """Debian codename, its Python, and Salt 3008.3 in /opt/salt on every
    minion and the master."""
    for h in [*lab.minions, "salt"]:
        out = lab.exec(h, ". /etc/os-release; echo $VERSION_CODENAME; "
                          "/opt/salt/bin/python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'; "
                          "salt-call --version", check=True).stdout.split("\n")
        assert out[0] == lab.release, (h, out)
        assert out[1] == PYTHON[lab.release], (h, out)
        assert out[2].startswith("salt-call 3008.3"), (h, out)


def test_hosts_reach_each_other_by_address(lab):
    failures = []
    for src in lab.minions:
        for dst in lab.minions:
            if src == dst:
                continue
            r = lab.exec(src, ["ping", "-c1", "-W3", lab.address(dst)], timeout=30)
            if r.returncode != 0:
                failures.append(f"{src} -> {dst} ({lab.address(dst)}): {r.stdout.strip()[-200:]}")
    assert not failures, "\n".join(failures)


def test_systemd_is_running_everywhere(lab):
    bad = {}
    for h in [*lab.minions, "salt"]:
        state = lab.exec(h, "systemctl is-system-running").stdout.strip()
        if state != "running":
            bad[h] = f"{state}: " + lab.exec(h, "systemctl --failed --no-legend --plain").stdout.strip()
    assert not bad, bad


def test_hostname_is_the_minion_id_fqdn_included(lab):
    assert FQDN in lab.hosts
    assert lab.container(FQDN) == f"stacklab-{LAYOUT}-{FQDN}"
    for h in lab.minions:
        host = lab.host(h)
        assert host.check_output("hostname") == h
        assert host.check_output("sed -n 's/^id: //p' /etc/salt/minion.d/stacklab.conf") == h
    assert lab.salt("*", "grains.get", "id") == {h: h for h in lab.minions}
    assert lab.salt(FQDN, "grains.get", "fqdn") == {FQDN: FQDN}


def test_salt_minion_runs_under_systemd(lab):
    for h in lab.minions:
        svc = lab.host(h).service("salt-minion")
        assert svc.is_running and svc.is_enabled, h


def test_minion_keys_are_preseeded_not_auto_accepted(lab):
    keys = json.loads(lab.exec("salt", "salt-key --out=json -L", check=True).stdout)
    assert sorted(keys["minions"]) == sorted(lab.minions)
    assert not keys.get("minions_pre") and not keys.get("minions_rejected")
    conf = lab.exec("salt", "cat /etc/salt/master.d/stacklab.conf", check=True).stdout
    assert "auto_accept: false" in conf


def test_master_serves_the_stack_env_and_a_base_env_of_its_own(lab):
    conf = yaml.safe_load(lab.exec("salt", "cat /etc/salt/master.d/stacklab.conf", check=True).stdout)
    # The lab's own file root first (tests lay an app's next release there).
    assert conf["file_roots"] == {
        "base": ["/srv/lab-base"],
        "stack": ["/srv/site/salt", "/srv/django-stack/salt", "/srv/django-stack/formulas",
                  "/srv/django-stack/examples/apps"],
    }
    assert conf["pillar_roots"] == {"stack": ["/srv/site", "/srv/django-stack/pillar"]}
    assert sorted(lab.salt_run("fileserver.envs")) == ["base", "stack"]
    # The whole repo, read-only: the djangostack symlink of the django formula resolves.
    r = lab.exec("salt", "ls /srv/django-stack/formulas/django/files/djangostack/pyproject.toml "
                 "/srv/django-stack/pillar/roles.yaml", check=True)
    assert "pyproject.toml" in r.stdout
    r = lab.exec("salt", "touch /srv/django-stack/.stacklab-write-test")
    assert r.returncode != 0 and "Read-only" in r.stderr
    r = lab.exec("salt", "touch /srv/site/x")
    assert r.returncode != 0 and "Read-only" in r.stderr


def test_site_pillar_root(lab, repo):
    site = lab.site_dir
    assert site == repo / ".lab" / LAYOUT / "site"
    assert sorted(p.name for p in site.iterdir()) == ["apps.sls", "overrides.sls", "secrets.sls", "topology.sls"]
    # topology.sls: a plain YAML copy of the layout file (no Jinja include).
    text = (site / "topology.sls").read_text()
    assert "{%" not in text and "include" not in text
    assert yaml.safe_load(text) == yaml.safe_load(lab.topology.path.read_text())
    # apps.sls: the example's apps, each with its certificate from the lab's
    # ACME server, and error mail through the lab master (an SMTP sink there
    # when a test starts one).
    apps = yaml.safe_load((site / "apps.sls").read_text())["apps"]
    example = yaml.safe_load((repo / "pillar" / "examples" / "apps.sls").read_text())["apps"]
    lab_only = ("tls", "mail")
    assert {name: {k: v for k, v in app.items() if k not in lab_only} for name, app in apps.items()} == \
        {name: {k: v for k, v in app.items() if k not in lab_only} for name, app in example.items()}
    assert {app["tls"]["directory"] for app in apps.values()} == {f"https://{lab.acme_address}:14000/dir"}
    assert {(app["mail"]["host"], app["mail"]["port"]) for app in apps.values()} == \
        {(lab.master_address, MAIL_RELAY_PORT)}
    # secrets.sls: generated by write_site (its shape: tests/fast/test_lab_site.py).
    assert (site / "secrets.sls").stat().st_mode & 0o777 == 0o600
    assert "CHANGE-ME" not in (site / "secrets.sls").read_text()
    served = lab.exec("salt", "cat /srv/site/overrides.sls", check=True).stdout
    assert "find_links: /srv/stacklab/wheelhouse" in served and "memory_mb: 512" in served


def test_secrets_are_kept_across_ups(lab):
    before = (lab.site_dir / "secrets.sls").read_text()
    lab.up()   # already up: keeps the hosts, rewrites the site dir
    assert (lab.site_dir / "secrets.sls").read_text() == before


def _roles(lab, target="*") -> dict:
    """Each minion's stack:roles, compiled afresh on the master (pillar.items)."""
    data = lab.salt(target, "pillar.items", "unmask=True", timeout=300)
    return {m: (p.get("stack") or {}).get("roles") if isinstance(p, dict) else p for m, p in data.items()}


def test_pillar_comes_from_the_site_root(lab):
    """Each topology host's roles reach it through the stack pillar env; the
    outsider gets no stack pillar."""
    assert _roles(lab) == {**{h: lab.topology.hosts[h].roles for h in lab.hosts}, lab.outsider: None}


def test_set_topology_is_live_and_restored(lab, lab_topology):
    data = yaml.safe_load(lab.topology.text)
    data["topology"]["hosts"]["alpha"]["roles"] = ["loadbalancer", "media"]
    data["topology"]["hosts"]["bravo"]["roles"] = ["app"]
    lab_topology(yaml.safe_dump(data))
    assert _roles(lab, "bravo") == {"bravo": ["app"]}
    with pytest.raises(LabError, match="hosts not in this lab: delta"):
        lab.set_topology(yaml.safe_dump(data).replace("bravo:", "delta:"))
    # A wrong schema is the pillar's to reject, not the lab's.
    data["topology"]["hosts"]["bravo"]["roles"] = ["webserver"]
    lab.set_topology(yaml.safe_dump(data))
    lab.restore_topology()
    served = lab.exec("salt", "cat /srv/site/topology.sls", check=True).stdout
    assert served.endswith(lab.topology.text)
    assert _roles(lab, "bravo") == {"bravo": ["app", "media"]}


def test_the_outsider_gets_only_its_own_sites_states(lab):
    """The stack's top file (env stack) never targets the outsider; the
    lab's base env gives it one state, and the topology hosts none."""
    tops = lab.salt("*", "state.show_top")
    assert tops[lab.outsider] == {"base": ["outsider"]}
    for h in lab.hosts:
        assert "base" not in tops[h] and "stack.host" in tops[h]["stack"], (h, tops[h])
    result = lab.salt(lab.outsider, "state.apply")
    assert lab.state_ids(lab.outsider, result) == lab.outsider_state_ids
    assert lab.exec(lab.outsider, "cat /etc/outsider-was-here", check=True).stdout.startswith("managed by")


def test_release_wheelhouse_is_mounted_read_only_on_every_host(lab):
    abi = "cp" + PYTHON[lab.release].replace(".", "")
    for h in lab.hosts:
        host = lab.host(h)
        assert host.file("/srv/stacklab/wheelhouse").is_directory
        assert host.run("touch /srv/stacklab/wheelhouse/x").rc != 0
        names = host.check_output("ls /srv/stacklab/wheelhouse").split()
        assert any(n.startswith("djangostack-") for n in names), names
        assert any(n.startswith("psycopg_binary-") and f"-{abi}-" in n for n in names), names


def test_apt_goes_through_the_lab_cache(lab):
    conf = lab.exec("bravo", "cat /etc/apt/apt.conf.d/01stacklab-proxy", check=True).stdout
    assert f"http://{lab.address('aptproxy')}:3142" in conf
    r = lab.exec("bravo", "apt-get update -q", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    log = lab.exec("aptproxy", "cat /var/log/apt-cacher-ng/apt-cacher.log", check=True).stdout
    assert lab.address("bravo") in log


def test_registry_ports_are_published_on_localhost(lab):
    """alpha holds loadbalancer, whose registry entry says lab.publish: [80, 443];
    the site's URL is the published 443."""
    assert lab.topology.registry["roles"]["loadbalancer"]["lab"]["publish"] == [80, 443]
    assert {h: lab.topology.published_ports(h) for h in lab.hosts} == \
        {"alpha": [80, 443], "bravo": [], FQDN: []}
    url = lab.url
    assert url and url.startswith("https://127.0.0.1:") and lab.urls == {"alpha": url}
    # Plain HTTP on 443 (no stack deployed here): the publishing is what is checked.
    url = url.replace("https://", "http://")
    lab.exec("alpha", "systemd-run --unit=stacklab-probe python3 -m http.server 443 --directory /etc",
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
    for h in lab.minions:
        assert f"stacklab-{LAYOUT}-{h}" in out
    assert f"lab {LAYOUT} ({lab.release})" in out
    assert "running" in out and lab.url in out


def test_cli_finds_the_running_lab_and_its_release(lab, repo):
    r = subprocess.run([sys.executable, "-m", "stacklab", "salt", FQDN, "grains.get", "oscodename"],
                       capture_output=True, text=True, cwd=repo, timeout=120)
    assert r.returncode == 0 and lab.release in r.stdout, r.stdout + r.stderr


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


def test_the_same_layout_on_bookworm(lab_session):
    """Debian 12 beside 13: same layout, its own images and wheelhouse."""
    lab = lab_session.get(LAYOUT, deploy=False, release="bookworm")
    try:
        assert lab.release == "bookworm"
        assert lab.salt("*", "test.ping") == {h: True for h in lab.minions}
        test_every_container_runs_the_release(lab)
        test_systemd_is_running_everywhere(lab)
        test_release_wheelhouse_is_mounted_read_only_on_every_host(lab)
        assert lab.salt(FQDN, "grains.get", "oscodename") == {FQDN: "bookworm"}
    finally:
        lab_session.release()

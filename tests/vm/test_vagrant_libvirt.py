"""Vagrant with real VMs (issue 10): `vagrant up --provider=libvirt` of the
single layout — a salt-master VM ("salt") and web1 — converges and serves
the site through the load balancer over HTTPS; `vagrant provision` (the
ordered deploy again) changes 0 states; `vagrant destroy` leaves no VM.

Slow (qemu software emulation: KVM here cannot boot stock kernels) and not
in CI: run it with `./lab test vm`. It prepares this machine first
(stacklab/vmhost.py: libvirt, Vagrant's management network, an apt cache
for the guests), builds or reuses the box (./lab vm-box) and the app
wheelhouse, and tears down any container lab (its bridge would hold the
layout's subnet). It prints the times (up, deploy, provision, destroy), the
changes per host and the HTTP status, and keeps Vagrant's output in
.lab/test-results/vm-*.log.

STACKLAB_VM_LAYOUT=path/to/topology.sls runs another layout (e.g. a copy of
single on another subnet) and then leaves container labs alone: a
development aid beside a running lab.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from stacklab import images, vagrant, vmbox, vmhost, webclient
from stacklab.config import Settings, check_release
from stacklab.containers import down_layout
from stacklab.topology import load as load_topology
from stacklab.util import LabError, Progress, wait_until

REPO = Path(__file__).resolve().parents[2]
LAYOUT = os.environ.get("STACKLAB_VM_LAYOUT", "single")
HTTPS_PORT = 443
# Where the deploy starts and ends in the master's provisioner output (vagrant/provision-master.sh).
DEPLOY_START = re.compile(r"minions answer; running the ordered deploy")
DEPLOY_END = re.compile(r"django-stack deploy: (OK|FAILED)")
UP_TIMEOUT = 3600
PROVISION_TIMEOUT = 2400


def vagrant_run(args: list[str], env: dict, log: Path, timeout: float, say) -> tuple[int, list[tuple[float, str]]]:
    """Run vagrant, streaming its output to ``log``; returns the exit code and
    each output line with the seconds since the start, so steps inside one
    command (the deploy inside `vagrant up`) can be timed."""
    start = time.monotonic()
    lines: list[tuple[float, str]] = []
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh, subprocess.Popen(
            ["vagrant", *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True) as proc:
        # A silent hang must end too: the watchdog kills vagrant's process group.
        watchdog = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGTERM))
        watchdog.start()
        try:
            fh.write(f"$ vagrant {' '.join(args)}\n")
            for raw in proc.stdout:
                # The box upload's progress meter redraws one line with \r.
                line = raw.rstrip("\n").split("\r")[-1]
                took = time.monotonic() - start
                lines.append((took, line))
                fh.write(f"[{took:7.1f}s] {line}\n")
                fh.flush()
                if DEPLOY_START.search(line) or DEPLOY_END.search(line) or "Running provisioner" in line:
                    say(f"[vagrant {args[0]} {took:6.0f}s] {line.strip()}")
            rc = proc.wait(timeout=60)
        finally:
            watchdog.cancel()
    if time.monotonic() - start >= timeout:
        raise LabError(f"vagrant {' '.join(args)}: killed after {timeout:.0f}s (log: {log})")
    return rc, lines


def deploy_seconds(lines: list[tuple[float, str]]) -> float | None:
    """From the master's 'running the ordered deploy' to its report."""
    start = next((t for t, line in lines if DEPLOY_START.search(line)), None)
    end = next((t for t, line in lines if start is not None and t >= start and DEPLOY_END.search(line)), None)
    return None if start is None or end is None else end - start


def site_answers(address: str, say) -> webclient.Response:
    """The demo page over HTTPS through the load balancer (its certificate is
    self-signed: webclient does not verify it)."""
    def check():
        try:
            page = webclient.request(address, "/", port=HTTPS_PORT, timeout=60)
        except OSError as exc:
            return False, str(exc)
        check.page = page
        return page.status == 200, f"HTTP {page.status}"
    wait_until(check, timeout=300, what=f"https://{address}/", progress=Progress(say), interval=5)
    return check.page


@pytest.fixture(scope="module")
def vm_env(say):
    """This machine ready for VMs, the box and wheelhouse built, no container
    lab in the way; the environment the Vagrantfile runs with."""
    progress = Progress(say)
    settings = Settings.from_env()
    release = check_release(None)
    if "STACKLAB_VM_LAYOUT" not in os.environ:
        down_layout(None, progress)
    vmhost.setup(settings, release, progress)
    box = vmbox.ensure_box(settings, release, progress)
    images.app_wheelhouse(settings, release, progress)
    return {**os.environ, "LAYOUT": LAYOUT, "VAGRANT_DEFAULT_PROVIDER": "libvirt", "VAGRANT_BOX": box.name,
            "STACKLAB_APT_PROXY": vmhost.apt_proxy_url(),
            # Machines of their own, apart from a docker-provider run's.
            "VAGRANT_DOTFILE_PATH": str(REPO / ".lab" / "vagrant-libvirt")}


def test_single_layout_converges_and_serves_on_libvirt_vms(vm_env, say, record_timing):
    settings = Settings.from_env()
    topology = load_topology(LAYOUT, settings.layout_dirs, settings.pillar_lib)
    web = topology.with_role("loadbalancer")[0]
    logs = REPO / ".lab" / "test-results"
    summary: list[str] = [f"layout {topology.name} ({topology.path.name}): {', '.join(topology.hosts)} + salt "
                          f"(master at {vagrant.master_address(topology)}); box {vm_env['VAGRANT_BOX']}, "
                          f"driver qemu (software emulation)"]
    times: dict[str, float] = {}
    # An interrupted earlier run may have left machines.
    vagrant_run(["destroy", "-f"], vm_env, logs / "vm-destroy-before.log", 600, say)
    try:
        t0 = time.monotonic()
        rc, up_lines = vagrant_run(["up", "--provider=libvirt"], vm_env, logs / "vm-up.log", UP_TIMEOUT, say)
        times["up"] = time.monotonic() - t0
        up_text = "\n".join(line for _, line in up_lines)
        assert rc == 0, f"vagrant up exited {rc}:\n" + "\n".join(line for _, line in up_lines[-40:])
        times["deploy"] = deploy_seconds(up_lines) or float("nan")
        first = vagrant.parse_report(up_text)
        summary.append("first deploy (inside vagrant up): " + ", ".join(
            f"{h} changed {c['changed']} failed {c['failed']}" for h, c in first.items()))
        assert set(first) == set(topology.hosts), up_text[-3000:]
        assert all(c["failed"] == 0 for c in first.values()), first
        assert all(c["changed"] > 0 for c in first.values()), first

        page = site_answers(web.address, say)
        summary.append(f"https://{web.address}/ (Host {webclient.SITE_HOST}, through the load balancer): "
                       f"HTTP {page.status}, {len(page.body)} bytes")
        assert page.status == 200
        assert 'id="visit-id"' in page.text, page.text[:1000]   # the demo page, from the database

        t0 = time.monotonic()
        rc, prov_lines = vagrant_run(["provision"], vm_env, logs / "vm-provision.log", PROVISION_TIMEOUT, say)
        times["provision"] = time.monotonic() - t0
        prov_text = "\n".join(line for _, line in prov_lines)
        assert rc == 0, f"vagrant provision exited {rc}:\n" + "\n".join(line for _, line in prov_lines[-40:])
        second = vagrant.parse_report(prov_text)
        summary.append("vagrant provision (the ordered deploy again): " + ", ".join(
            f"{h} changed {c['changed']} failed {c['failed']}" for h, c in second.items()))
        assert second == {h: {"changed": 0, "failed": 0} for h in topology.hosts}, prov_text[-3000:]
    finally:
        t0 = time.monotonic()
        rc, _ = vagrant_run(["destroy", "-f"], vm_env, logs / "vm-destroy.log", 600, say)
        times["destroy"] = time.monotonic() - t0
        left = vmhost.leftover_domains(f"{REPO.name}_")
        summary.append(f"vagrant destroy: exit {rc}; libvirt domains left: {', '.join(left) or 'none'}")
        for name, seconds in times.items():
            record_timing(f"vagrant libvirt: {name}", seconds)
        summary.append("times: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()))
        say("\n".join(["", "=== vagrant-libvirt run ===", *summary, ""]))
    assert rc == 0 and not left

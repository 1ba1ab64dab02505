"""`vagrant up` with the docker provider brings up the three-tier layout from
the Vagrantfile: one machine per topology host plus the master, which runs
the ordered deploy. The site answers through the load balancer, `vagrant
provision` changes 0 states on every host, and `vagrant destroy -f` leaves no
container, network or volume behind.

The Vagrant network takes the topology's subnet, as a lab does, so every lab
is torn down first. STACK_VAGRANT_LAYOUT (development only) runs a copy of
the layout on another subnet instead (e.g. 10.78.0.0/24) and leaves labs alone.
Its keys and secrets persist in .lab/vagrant/ (Vagrant's dotfile dir here).
"""
from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from stacklab import docker, images
from stacklab.config import Settings, check_release
from stacklab.containers import APT_PROXY_PORT, down_layout
from stacklab.topology import load
from stacklab.util import Progress
from stacklab.vagrant import parse_report
from tests.layouts import REPO
from tests.lab.stack_checks import request

LAYOUT = os.environ.get("STACK_VAGRANT_LAYOUT") or "three-tier"
MASTER = "salt"
APT_CACHE_LABEL = "stacklab.vagrant-apt-cache=true"


def vagrant(args, env, say, timeout):
    """Run `vagrant ARGS`, printing its output live; returns (exit code, output)."""
    proc = subprocess.Popen(["vagrant", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    lines, deadline = [], time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        say("  vagrant " + args[0] + ": " + line.rstrip())
        if time.monotonic() > deadline:
            os.killpg(proc.pid, 9)
            break
    return proc.wait(), "".join(lines)


@pytest.fixture(scope="module")
def topology():
    settings = Settings.from_env()
    return load(LAYOUT, settings.layout_dirs, settings.pillar_lib)


@pytest.fixture(scope="module")
def apt_cache(topology, lab_session, say):
    """The lab's apt cache on a network of the topology's subnet that exists
    before `vagrant up`, which then puts its machines on it (Vagrant takes a
    network it finds for the subnet): packages come from this machine's
    cache instead of Debian's mirror. Its URL; removed at the end."""
    if not os.environ.get("STACK_VAGRANT_LAYOUT"):
        # Vagrant would join (and later remove) a lab's network of the same subnet.
        lab_session.release()
        down_layout(None, Progress(say))
    settings = Settings.from_env()
    release = check_release(None)
    aptproxy = images.ensure_images(settings, release, Progress(say)).aptproxy
    address = topology.free_top_addresses(2)[1]
    docker.docker("network", "create", "--driver", "bridge", "--subnet", str(topology.network),
                  "--gateway", topology.gateway, "--label", APT_CACHE_LABEL, apt_cache_network(topology))
    try:
        docker.docker("run", "-d", "--name", f"{apt_cache_network(topology)}-aptproxy", "--label", APT_CACHE_LABEL,
                      "--network", apt_cache_network(topology), "--ip", address,
                      "-v", f"{settings.apt_cache}:/var/cache/apt-cacher-ng", aptproxy, timeout=120)
        yield f"http://{address}:{APT_PROXY_PORT}"
    finally:
        leftovers = docker.ids("container", [APT_CACHE_LABEL])
        if leftovers:
            docker.docker("rm", "-f", "-v", *leftovers, check=False)
        docker.docker("network", "rm", apt_cache_network(topology), check=False)


def apt_cache_network(topology):
    return f"stacklab-vagrant-{topology.name}"


@pytest.fixture(scope="module")
def vagrant_env(apt_cache):
    return dict(os.environ, LAYOUT=LAYOUT, VAGRANT_DOTFILE_PATH=str(REPO / ".lab" / "vagrant"),
                VAGRANT_CHECKPOINT_DISABLE="1", VAGRANT_NO_COLOR="1", STACKLAB_APT_PROXY=apt_cache)


def containers(topology):
    return docker.ids("container", [f"django-stack.vagrant={topology.name}"])


def networks(topology):
    """Docker networks on the topology's subnet (Vagrant names its own
    vagrant_network_<subnet>), other than the apt cache's."""
    return [n["Name"] for n in docker.inspect(*docker.ids("network", []), kind="network")
            if any(c.get("Subnet") == str(topology.network) for c in (n.get("IPAM") or {}).get("Config") or [])
            and n["Name"] != apt_cache_network(topology)]


def test_vagrantfile_validates(vagrant_env, say):
    code, out = vagrant(["validate"], vagrant_env, say, timeout=120)
    assert code == 0, out


def test_up_serves_the_site_provision_changes_nothing_destroy_leaves_nothing(
        topology, vagrant_env, say, record_timing):
    hosts = list(topology.hosts)
    assert not containers(topology), "Vagrant machines of this layout are already up"
    volumes: set[str] = set()
    try:
        t0 = time.monotonic()
        code, out = vagrant(["up"], vagrant_env, say, timeout=1500)
        record_timing("vagrant up (docker provider)", time.monotonic() - t0)
        assert code == 0, out[-3000:]
        running = [c for c in docker.inspect(*containers(topology)) if c["State"]["Running"]]
        volumes = {m["Name"] for c in running for m in c.get("Mounts") or [] if m.get("Type") == "volume"}
        say(f"VAGRANT hosts up: {len(running)} of {len(hosts) + 1} (with the master)")
        assert len(running) == len(hosts) + 1
        first = parse_report(out)
        say(f"VAGRANT first deploy, changed states per host: {first}")
        assert set(first) == set(hosts) and not any(c["failed"] for c in first.values()), out[-3000:]

        for lb in topology.with_role("loadbalancer"):
            page = request(lb.address, "/")
            say(f"VAGRANT HTTPS through {lb.id}: {page.status}")
            assert page.status == 200, page.text[:500]
            assert re.search(r'id="visit-id">#\d+<', page.text), page.text[:500]

        t0 = time.monotonic()
        code, out = vagrant(["provision"], vagrant_env, say, timeout=900)
        record_timing("vagrant provision (second deploy)", time.monotonic() - t0)
        assert code == 0, out[-3000:]
        second = parse_report(out)
        say(f"VAGRANT vagrant provision, changed states per host: {second}")
        assert second == {h: {"changed": 0, "failed": 0} for h in hosts}, out[-3000:]
    finally:
        t0 = time.monotonic()
        code, out = vagrant(["destroy", "-f", "--parallel"], vagrant_env, say, timeout=300)
        record_timing("vagrant destroy -f --parallel", time.monotonic() - t0)
        left = {"containers": containers(topology), "networks": networks(topology),
                "volumes": [v for v in docker.ids("volume", []) if v in volumes]}
        if any(left.values()):
            # Leave the machine clean for what runs next, then fail.
            if left["containers"]:
                docker.docker("rm", "-f", "-v", *left["containers"], check=False)
            for network in left["networks"]:
                docker.docker("network", "rm", network, check=False)
        say(f"VAGRANT left after destroy: {left}")
    assert code == 0, out[-3000:]
    assert left == {"containers": [], "networks": [], "volumes": []}

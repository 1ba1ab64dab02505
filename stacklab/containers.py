"""Bring-up and teardown: the network, the containers, the salt-master and
minion configuration, and removing a lab so that nothing is left.

Per lab, on one Docker bridge network with the topology's subnet:

- ``stacklab-<layout>-aptproxy``: apt-cacher-ng (cache on this machine);
- ``stacklab-<layout>-acme``: pebble, the ACME server the lab's load
  balancers get their certificates from (its /etc/hosts points the apps'
  names at the load balancers, as a site's DNS would);
- ``stacklab-<layout>-master``: systemd + salt-master (hostname ``salt``),
  with the whole repo read-only at /srv/django-stack, the lab's site pillar
  root at /srv/site and the lab's stand-in for a site's own states at
  /srv/lab-base (see master_conf);
- ``stacklab-<layout>-<minion id>``: one systemd host per topology host
  (hostname = the minion id, FQDNs included) with the release's app
  wheelhouse read-only at /srv/stacklab/wheelhouse;
- ``stacklab-<layout>-outsider``: a minion the topology does not name.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import yaml

from . import docker
from . import site
from .site import LAB_BASE, REPO_MOUNT, SITE_MOUNT, WHEELHOUSE_MOUNT
from .util import LabError, Progress, wait_until

if TYPE_CHECKING:
    from .images import ImageSet
    from .lab import Lab

LABEL = "stacklab.managed=true"
APT_PROXY_PORT = 3142

MASTER_SETTINGS = """\
# Keys are pre-seeded; never accept unknown minions.
auto_accept: false
open_mode: false
# Two shared CPU cores: a few workers, and patience with slow minions.
worker_threads: 4
timeout: 30
gather_job_timeout: 30
# See new files under the roots at once (the default caches lists for 20s).
fileserver_list_cache_time: 0
state_output: changes
# Say which pillar key is wrong instead of "see master log" (as README advises).
pillar_safe_render_error: false
"""


# The environment salt/masterless.conf serves the stack from.
STACK_FILE_ENV = "stack"


def master_conf(repo: Path, base_roots: Sequence[str] = ("/srv/lab-base",), lab_files: bool = True) -> str:
    """A master's configuration for the stack: its roots as salt/masterless.conf
    names them (its own environment, `stack`, so a site's own base top file
    and its other minions are left alone), the stack's runners
    (salt/_runners), ``base_roots`` as `base` (the
    lab's stand-in for a site's own states; none on the Vagrantfile's
    master), with ``lab_files`` the site dir's SITE_STATE_DIR first among
    the stack's roots (the lab's tests only), and MASTER_SETTINGS. Roots are
    read-only mounts of the repo: an edit there is live at the next apply."""
    stack = yaml.safe_load((repo / "salt" / "masterless.conf").read_text())
    base = {"base": list(base_roots)} if base_roots else {}
    file_roots = dict(stack["file_roots"])
    if lab_files:
        file_roots[STACK_FILE_ENV] = [f"{SITE_MOUNT}/{site.SITE_STATE_DIR}", *file_roots[STACK_FILE_ENV]]
    roots = {"file_roots": {**base, **file_roots},
             "pillar_roots": stack["pillar_roots"],
             # salt-run stack.plan / stack.status, from the checkout itself
             # (as README's master configuration has it).
             "runner_dirs": [f"{stack['file_roots'][STACK_FILE_ENV][0]}/_runners"]}
    return ("# Written by stacklab (containers.master_conf).\n"
            + yaml.safe_dump(roots, default_flow_style=None, sort_keys=False) + MASTER_SETTINGS)


MINION_CONF = """\
# Written by stacklab.
master: salt
id: {id}
# The lab restarts masters often: retry quickly.
acceptance_wait_time: 3
"""

APT_PROXY_CONF = """\
// Written by stacklab: this lab host fetches packages through the lab's
// apt cache, shared by all hosts and runs.
Acquire::http::Proxy "http://{address}:{port}";
"""


def parallel(fn: Callable, items: Sequence, workers: int = 4) -> list:
    """``fn`` over ``items`` in threads; every failure is gathered into one LabError."""
    if not items:
        return []
    errors: list[str] = []
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futs = {pool.submit(fn, item): item for item in items}
        for fut in concurrent.futures.as_completed(futs):
            try:
                results.append(fut.result())
            except Exception as exc:  # noqa: BLE001 - gathered and re-raised below
                errors.append(f"{futs[fut]}: {exc}")
    if errors:
        raise LabError("\n".join(sorted(errors)))
    return results


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def label_args(labels: list[str]) -> list[str]:
    return [x for lab in labels for x in ("--label", lab)]


def create(lab: "Lab", imgs: "ImageSet", keys: dict[str, tuple[str, str]]) -> None:
    """Create and configure every container of ``lab``; returns once every
    minion answers test.ping."""
    p = lab.progress
    s = lab.settings
    topo = lab.topology
    with p.step(f"network {lab.network} ({topo.network})"):
        taken = [n["Name"] for n in docker.inspect(*docker.ids("network", []), kind="network")
                 if any(c.get("Subnet") == str(topo.network)
                        for c in (n.get("IPAM") or {}).get("Config") or [])]
        if taken:
            raise LabError(f"subnet {topo.network} is already used by docker network(s) "
                           f"{', '.join(taken)} (not this lab's): remove them or change the topology")
        docker.docker("network", "create", "--driver", "bridge",
                      "--subnet", str(topo.network), "--gateway", topo.gateway,
                      *label_args(lab.labels("network") + [f"stacklab.topology={topo.path}"]),
                      lab.network)
    s.apt_cache.mkdir(parents=True, exist_ok=True)
    wheelhouse = s.wheelhouse(lab.release)
    wheelhouse.mkdir(parents=True, exist_ok=True)
    common = ["--network", lab.network, "--restart", "no"]
    runs: list[tuple[str, list[str]]] = []
    runs.append((lab.container("aptproxy"), [
        "--hostname", "aptproxy", "--ip", lab.proxy_address, "--network-alias", "aptproxy",
        *label_args(lab.labels("aptproxy") + [f"stacklab.address={lab.proxy_address}"]),
        "-v", f"{s.apt_cache}:/var/cache/apt-cacher-ng", imgs.aptproxy]))
    names = [name for app in site.load_apps(s.repo).values() for name in app.get("server_names") or []]
    runs.append((lab.container("acme"), [
        "--hostname", "acme", "--ip", lab.acme_address, "--network-alias", "acme",
        *label_args(lab.labels("acme") + [f"stacklab.address={lab.acme_address}"]),
        *[x for name in names for h in topo.with_role("loadbalancer") for x in ("--add-host", f"{name}:{h.address}")],
        "-v", f"{lab.dir / 'acme'}:{site.ACME_MOUNT}:ro", imgs.acme]))
    runs.append((lab.container("master"), [
        "--hostname", "salt", "--ip", lab.master_address, "--network-alias", "salt",
        *label_args(lab.labels("master") + [f"stacklab.address={lab.master_address}"]),
        *docker.SYSTEMD_RUN_FLAGS,
        # The whole tree: the django formula ships djangostack through a
        # symlink to the repo's top-level djangostack/.
        "-v", f"{s.repo}:{REPO_MOUNT}:ro",
        "-v", f"{lab.site_dir}:{SITE_MOUNT}:ro",
        "-v", f"{LAB_BASE}:/srv/lab-base:ro",
        imgs.base]))
    port = int(os.environ.get("STACKLAB_HTTP_PORT", "8080"))
    for host in topo.hosts.values():
        publish: list[str] = []
        labels = lab.labels("host", host.id) + [
            f"stacklab.address={host.address}", f"stacklab.roles={','.join(host.roles)}"]
        # Ports from the role registry (roles.<role>.lab.publish), on
        # 127.0.0.1 from STACKLAB_HTTP_PORT up; port 443 is the site's URL.
        published, url = [], None
        for inner in topo.published_ports(host.id):
            while not port_free(port):
                port += 1
            publish += ["-p", f"127.0.0.1:{port}:{inner}"]
            published.append(f"127.0.0.1:{port}->{inner}")
            if inner == 443 and url is None:
                url = f"https://127.0.0.1:{port}/"
            port += 1
        if url:
            labels.append(f"stacklab.url={url}")
        if published:
            labels.append(f"stacklab.published={' '.join(published)}")
        runs.append((lab.container(host.id), host_args(lab, host.id, host.address, labels, imgs, publish)))
    runs.append((lab.container(lab.outsider), [
        "--hostname", lab.outsider, "--ip", lab.outsider_address, "--network-alias", lab.outsider,
        *label_args(lab.labels("outsider", lab.outsider) + [f"stacklab.address={lab.outsider_address}"]),
        *docker.SYSTEMD_RUN_FLAGS, imgs.base]))
    with p.step(f"starting {len(runs)} containers (apt proxy, ACME server, master, {len(lab.hosts)} hosts, outsider)"):
        parallel(lambda r: docker.docker("run", "-d", "--name", r[0], *common, *r[1], timeout=180),
                 runs, workers=3)
    systemd = [lab.container("master")] + [lab.container(h) for h in lab.minions]
    with p.step("waiting for systemd to boot in every container"):
        states = parallel(lambda c: wait_boot(c, p), systemd)
        for name, state, why in states:
            if state != "running":
                p(f"  {name}: {state}: {why}")
    with p.step("configuring and starting salt-master"):
        setup_master(lab.container("master"), lab.settings.repo, keys)
    with p.step(f"configuring and starting {len(lab.minions)} minions"):
        parallel(lambda h: setup_minion(lab.container(h), h, keys[h], lab.proxy_address), lab.minions)
    lab.wait_ping()


def host_args(lab: "Lab", host_id: str, address: str, labels: list[str], imgs: "ImageSet",
              extra: Sequence[str] = ()) -> list[str]:
    """``docker run`` arguments of a topology host's container (after the
    common ones): systemd, the release's app wheelhouse, its address, then
    ``extra`` options (published ports, mounts)."""
    return ["--hostname", host_id, "--ip", address, "--network-alias", host_id,
            *label_args(labels), *docker.SYSTEMD_RUN_FLAGS,
            "-v", f"{lab.settings.wheelhouse(lab.release)}:{WHEELHOUSE_MOUNT}:ro",
            *extra, imgs.base]


def masterless_host(lab: "Lab", host_id: str, address: str, imgs: "ImageSet", site_dir: Path) -> None:
    """Start a host with no master, set up as README's "Masterless" says: a
    checkout of this repository at /srv/django-stack (here: the repo,
    read-only), the site's pillar root at /srv/site and salt/masterless.conf
    in /etc/salt/minion.d/; no salt-minion runs. The apt proxy is the lab's."""
    container = lab.container(host_id)
    labels = lab.labels("host", host_id) + [f"stacklab.address={address}", "stacklab.masterless=true"]
    mounts = ["-v", f"{lab.settings.repo}:{REPO_MOUNT}:ro", "-v", f"{site_dir}:{SITE_MOUNT}:ro"]
    docker.docker("run", "-d", "--name", container, "--network", lab.network, "--restart", "no",
                  *host_args(lab, host_id, address, labels, imgs, mounts), timeout=180)
    wait_boot(container, lab.progress)
    use_apt_proxy(container, lab.proxy_address)
    docker.put_file(container, "/etc/salt/minion.d/masterless.conf",
                    (lab.settings.repo / "salt" / "masterless.conf").read_text())


def join_host(lab: "Lab", host_id: str, address: str, imgs: "ImageSet",
              minion_config: tuple[str, str], key: tuple[str, str]) -> None:
    """Start a host that knows only what a site gives a new server: its
    minion configuration (``(path, text)``) and its pre-seeded keypair."""
    container = lab.container(host_id)
    labels = lab.labels("host", host_id) + [f"stacklab.address={address}", "stacklab.joined=true"]
    docker.docker("run", "-d", "--name", container, "--network", lab.network, "--restart", "no",
                  *host_args(lab, host_id, address, labels, imgs), timeout=180)
    wait_boot(container, lab.progress)
    start_minion(container, *minion_config, key, lab.proxy_address)


def wait_boot(container: str, progress: Progress, timeout: float = 120) -> tuple[str, str, str]:
    """Wait until systemd in ``container`` is up: (container, state, failed units)."""
    def check():
        r = docker.exec_(container, ["systemctl", "is-system-running"], check=False, timeout=30)
        state = r.stdout.decode(errors="replace").strip() or r.stderr.decode(errors="replace").strip()
        return state in ("running", "degraded"), state
    state = wait_until(check, timeout=timeout, what=f"{container}: systemd boot",
                       progress=progress, interval=0.5)
    why = ""
    if state == "degraded":
        why = docker.out("exec", container, "systemctl", "--failed", "--no-legend", "--plain",
                         check=False, timeout=30).replace("\n", "; ")
    return container, state, why


def setup_master(container: str, repo: Path, keys: dict[str, tuple[str, str]]) -> None:
    docker.put_file(container, "/etc/salt/master.d/stacklab.conf", master_conf(repo), "0644")
    docker.sh(container, "rm -f /etc/salt/pki/master/minions/*", timeout=30)
    for minion, (_pem, pub) in keys.items():
        docker.put_file(container, f"/etc/salt/pki/master/minions/{minion}", pub, "0644")
    # Type=notify: returns once the master is ready.
    docker.exec_(container, ["systemctl", "enable", "--now", "salt-master"], timeout=180)


def setup_minion(container: str, minion: str, key: tuple[str, str], proxy_address: str) -> None:
    start_minion(container, "/etc/salt/minion.d/stacklab.conf", MINION_CONF.format(id=minion), key,
                 proxy_address)


def use_apt_proxy(container: str, proxy_address: str) -> None:
    docker.put_file(container, "/etc/apt/apt.conf.d/01stacklab-proxy",
                    APT_PROXY_CONF.format(address=proxy_address, port=APT_PROXY_PORT))


def start_minion(container: str, config_path: str, config_text: str, key: tuple[str, str],
                 proxy_address: str) -> None:
    """The lab's apt proxy, the minion's configuration and keypair, then the
    minion, enabled at boot."""
    pem, pub = key
    use_apt_proxy(container, proxy_address)
    docker.put_file(container, config_path, config_text)
    docker.put_file(container, "/etc/salt/pki/minion/minion.pem", pem, "0400")
    docker.put_file(container, "/etc/salt/pki/minion/minion.pub", pub, "0644")
    docker.sh(container, "systemctl enable salt-minion && systemctl start --no-block salt-minion",
              timeout=60)


def down_layout(layout: str | None, progress: Progress) -> dict[str, int]:
    """Remove the containers (with their anonymous volumes), networks and
    volumes labelled for ``layout`` (None: every lab). Verifies nothing is left."""
    labels = [LABEL] + ([f"stacklab.layout={layout}"] if layout else [])
    what = f"lab {layout}" if layout else "all labs"
    cs = docker.ids("container", labels)
    ns = docker.ids("network", labels)
    vs = docker.ids("volume", labels)
    if not (cs or ns or vs):
        progress(f"{what}: nothing to remove")
        return {"containers": 0, "networks": 0, "volumes": 0}
    with progress.step(f"removing {what}: {len(cs)} containers, {len(ns)} networks, {len(vs)} volumes"):
        if cs:
            docker.docker("rm", "-f", "-v", *cs, timeout=300)
        if ns:
            docker.docker("network", "rm", *ns, timeout=120)
        if vs:
            docker.docker("volume", "rm", "-f", *vs, timeout=120)
    left = docker.ids("container", labels) + docker.ids("network", labels) + docker.ids("volume", labels)
    if left:
        raise LabError(f"{what}: still present after down: {' '.join(left)}")
    return {"containers": len(cs), "networks": len(ns), "volumes": len(vs)}

"""The lab: one systemd container per topology host, a salt-master, an apt
cache and one minion outside the topology, on one Debian release.

Python API (the CLI in cli.py and the pytest fixtures in tests/lab/conftest.py
are thin layers over it)::

    lab = Lab("three-tier", release="trixie")   # layout name or topology file
    lab.up()                         # build/reuse images, start, seed keys, wait for ping
    lab.run_orchestrate()            # salt-run state.orchestrate orchestrate.deploy saltenv=stack pillarenv=stack
    lab.highstate()                  # {topology host: changed states}; raises on failed states
    lab.salt("*", "test.ping")       # parsed JSON from the master's salt CLI
    lab.exec("app1", "uname -a")     # CompletedProcess (text)
    lab.address("app1"), lab.url     # 10.77.0.11, https://127.0.0.1:8081/
    lab.set_topology(yaml_text); lab.restore_topology()
    lab.down()                       # nothing of the lab is left

Where the rest lives: containers.py (bring-up, teardown), saltctl.py
(Salt verbs and result parsing), site.py (the site pillar root, keys, the
outsider's state tree), status.py, images.py, topology.py.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence

from . import containers, docker, images, site, topology
from .config import Settings, check_release
from .containers import LABEL, down_layout
from .saltctl import (OrchestrateResult, SaltMixin, count_states, format_orchestrate,  # noqa: F401
                      parse_json, parse_orchestrate)
from .status import format_status, layout_status
from .util import LabError, Progress, file_lock, sha256_text

MASTER_NAMES = ("salt", "master")

__all__ = ["Lab", "OrchestrateResult", "count_states", "down_layout", "format_status",
           "layout_status", "parse_orchestrate"]


class Lab(SaltMixin):
    """One layout's lab. ``layout`` is a name (pillar/examples/layouts/<name>.sls,
    else tests/lab/topologies/<name>.sls) or a path to a topology file;
    ``release`` is the Debian release of every container (default trixie,
    or $STACKLAB_RELEASE). ``out`` receives progress lines (default: stderr)."""

    outsider = topology.OUTSIDER
    outsider_state_ids = site.OUTSIDER_STATE_IDS

    def __init__(self, layout: str, *, release: str | None = None, settings: Settings | None = None,
                 out: Callable[[str], None] | None = None, progress: Progress | None = None):
        self.settings = settings or Settings.from_env()
        self.release = check_release(release)
        self.progress = progress or Progress(out)
        self.topology = topology.load(layout, self.settings.layout_dirs, self.settings.pillar_lib)
        self.name = self.topology.name
        self.network = f"stacklab-{self.name}"
        self.master_address, self.proxy_address, self.outsider_address, self.acme_address = \
            self.topology.free_top_addresses(4)
        self.dir = self.settings.state_dir / self.name
        self.site_dir = self.dir / "site"
        self.hosts = list(self.topology.hosts)
        self.minions = [*self.hosts, self.outsider]
        self.timings: dict[str, float] = {}
        self.last_highstate: object = None
        self._testinfra: dict[str, object] = {}
        self._fingerprint = ""
        # Hosts started by join() (minions of the master) and by
        # masterless() (no minion running): id -> address.
        self.joined: dict[str, str] = {}
        self.masterless_boxes: dict[str, str] = {}

    # --- names -----------------------------------------------------------
    def container(self, host: str) -> str:
        """Container name of a minion (topology host or the outsider), or of
        'salt'/'master', 'aptproxy', 'acme': stacklab-<layout>-<name>."""
        if host in MASTER_NAMES:
            return f"stacklab-{self.name}-master"
        if host in ("aptproxy", "acme") or host == self.outsider:
            return f"stacklab-{self.name}-{host}"
        if host not in self.topology.hosts and host not in self.added:
            raise LabError(f"no host {host!r} in layout {self.name} "
                           f"(hosts: {', '.join(self.hosts)}; also salt, aptproxy, acme, {self.outsider})")
        return f"stacklab-{self.name}-{host}"

    def address(self, host: str) -> str:
        if host in MASTER_NAMES:
            return self.master_address
        if host == "aptproxy":
            return self.proxy_address
        if host == "acme":
            return self.acme_address
        if host == self.outsider:
            return self.outsider_address
        self.container(host)
        if host in self.added:
            return self.added[host]
        return self.topology.hosts[host].address

    @property
    def added(self) -> dict[str, str]:
        """Hosts a test added to the lab's own: id -> address."""
        return {**self.joined, **self.masterless_boxes}

    def labels(self, kind: str, host: str = "") -> list[str]:
        labels = [LABEL, f"stacklab.layout={self.name}", f"stacklab.kind={kind}",
                  f"stacklab.release={self.release}"]
        if kind != "network":
            labels.append(f"stacklab.fingerprint={self._fingerprint}")
        if host:
            labels.append(f"stacklab.host={host}")
        return labels

    # --- discovery -------------------------------------------------------
    @staticmethod
    def layouts_up() -> dict[str, list[str]]:
        """Layout name -> container names, for every lab container on this engine."""
        found: dict[str, list[str]] = {}
        for c in docker.inspect(*docker.ids("container", [LABEL])):
            layout = c["Config"]["Labels"].get("stacklab.layout", "?")
            found.setdefault(layout, []).append(c["Name"].lstrip("/"))
        for n in docker.inspect(*docker.ids("network", [LABEL]), kind="network"):
            found.setdefault(n["Labels"].get("stacklab.layout", "?"), [])
        return found

    @staticmethod
    def running(layout: str) -> dict:
        """{'topology': file, 'release': release} of a layout's running lab
        (from its network's labels), or {}."""
        for n in docker.inspect(*docker.ids("network", [LABEL, f"stacklab.layout={layout}"]),
                                kind="network"):
            labels = n.get("Labels") or {}
            return {"topology": labels.get("stacklab.topology"), "release": labels.get("stacklab.release")}
        return {}

    def _expected(self) -> list[str]:
        return [self.container(h) for h in ("aptproxy", "acme", "master", *self.minions)]

    def fingerprint(self, imgs: images.ImageSet) -> str:
        """What a running lab must match to be reused: release, images, mounts, topology."""
        s = self.settings
        return sha256_text(self.release, imgs.base, imgs.aptproxy, imgs.acme, str(s.repo), str(s.cache_dir),
                           str(self.site_dir), str(site.LAB_BASE), self.topology.text,
                           "outsider-v1")[:16]

    def is_up(self, fingerprint: str | None = None) -> bool:
        """All of this lab's containers exist and run (and match ``fingerprint``)."""
        info = {c["Name"].lstrip("/"): c for c in
                docker.inspect(*docker.ids("container", [LABEL, f"stacklab.layout={self.name}"]))}
        for name in self._expected():
            c = info.get(name)
            if not c or not c["State"]["Running"]:
                return False
            if fingerprint and c["Config"]["Labels"].get("stacklab.fingerprint") != fingerprint:
                return False
        return True

    # --- the site pillar root ---------------------------------------------
    def _topology_sls(self) -> str:
        return site.topology_copy(self.topology.text, self.topology.path)

    def write_site(self) -> Path:
        """(Re)write .lab/<layout>/site/ (see stacklab/site.py): topology.sls
        (a copy of the layout file), apps.sls, secrets.sls (kept), overrides.sls.
        Error mail goes to the master (site.MAIL_RELAY_PORT)."""
        acme_ca = site.acme_server_files(self.dir / "acme", self.acme_address)
        return site.write_site(self.site_dir, self.settings.repo, self._topology_sls(), self.acme_address, acme_ca,
                               mail_relay=self.master_address)

    def set_topology(self, yaml_text: str, joining: Sequence[str] = ()) -> None:
        """Replace the lab's topology.sls with literal YAML (e.g. a role moved
        to another host); live at the next apply. Hosts must be lab hosts or
        ``joining`` (to be started by join()); the schema is the pillar's to
        check (a wrong file is a valid test)."""
        site.check_replacement(yaml_text, [*self.hosts, *self.joined, *joining])
        site.write_atomic(self.site_dir / "topology.sls", yaml_text, 0o644)

    def restore_topology(self) -> None:
        """Back to the layout file itself."""
        site.write_atomic(self.site_dir / "topology.sls", self._topology_sls(), 0o644)

    # --- up / down -----------------------------------------------------------
    def up(self, *, replace: bool = False, fresh: bool = False) -> float:
        """Bring the lab up; returns the seconds it took. Another layout's lab
        is refused unless ``replace`` (then it is torn down first). If this
        layout is already up on current images of the same release, it is
        kept (``fresh`` recreates it)."""
        t0 = time.monotonic()
        p = self.progress
        docker.available()
        with file_lock(self.settings.state_dir / ".lock", "lab up/down", p, timeout=900):
            others = {k: v for k, v in self.layouts_up().items() if k != self.name}
            if others:
                desc = "; ".join(f"{k} ({len(v)} containers)" for k, v in others.items())
                if not replace:
                    raise LabError(
                        f"another lab is up: {desc}. Layouts share a subnet, so one runs at a time: "
                        f"run `./lab down` first, or `./lab up {self.name} --replace`.")
                for other in others:
                    p(f"tearing down lab {other} (--replace)")
                    down_layout(other, p)
            with p.step(f"images ({self.release})"):
                imgs = images.ensure_images(self.settings, self.release, p)
            with p.step(f"app wheelhouse ({self.release})"):
                images.app_wheelhouse(self.settings, self.release, p, imgs)
            self.write_site()
            keys = site.minion_keys(self.dir / "pki", self.minions)
            self._fingerprint = self.fingerprint(imgs)
            if not fresh and self.is_up(self._fingerprint):
                p(f"lab {self.name} ({self.release}) is already up; refreshing its configuration")
                self.wait_ping(timeout=120)
            else:
                if self.layouts_up().get(self.name) is not None:
                    p(f"recreating lab {self.name}")
                    down_layout(self.name, p)
                try:
                    containers.create(self, imgs, keys)
                except LabError as exc:
                    raise LabError(f"{exc}\n(lab {self.name} is left as it is for inspection: "
                                   f"./lab status, ./lab exec HOST CMD; ./lab down removes it)") from exc
        took = time.monotonic() - t0
        self.timings["up"] = took
        p(f"lab {self.name} ({self.release}) up in {took:.1f}s")
        self.progress.out(self.format_status())
        return took

    def down(self) -> None:
        """Remove every container, network and volume of this layout's lab."""
        with file_lock(self.settings.state_dir / ".lock", "lab up/down", self.progress, timeout=900):
            down_layout(self.name, self.progress)

    # --- status -----------------------------------------------------------
    def status(self) -> dict:
        """{'layout', 'up', 'url', 'containers': [{name, host, kind, release,
        address, roles, state, systemd, url}]}"""
        return layout_status(self.name)

    def format_status(self) -> str:
        return format_status(self.status())

    @property
    def urls(self) -> dict[str, str]:
        """Host publishing port 443 -> the site's URL (https://127.0.0.1:PORT/)."""
        return {c["host"]: c["url"] for c in self.status()["containers"] if c.get("url")}

    @property
    def url(self) -> str | None:
        """URL of the first host (topology order) publishing port 443, or None."""
        urls = self.urls
        for h in self.hosts:
            if h in urls:
                return urls[h]
        return None

    # --- running things ------------------------------------------------------
    def exec(self, host: str, cmd: str | Sequence[str], *, check: bool = False,
             timeout: float = 600, input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``cmd`` on a host (a string goes through sh -c). Text output."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        r = docker.exec_(self.container(host), argv, check=False, timeout=timeout, input=input)
        res = subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(errors="replace"),
                                          r.stderr.decode(errors="replace"))
        if check and r.returncode != 0:
            raise LabError(f"{host}: {cmd!r} exited {r.returncode}: {res.stderr.strip() or res.stdout.strip()}")
        return res

    def join(self, host_id: str, address: str) -> dict:
        """Add a server the way README's "A host that joins by booting" says:
        on the master, a keypair made and accepted (salt-key --gen-keys) and
        the host's minion configuration printed from the site's topology,
        which must name it already; the new host gets those two and boots.
        Returns the counts of the highstate its minion runs at that start."""
        master = self.container("master")
        keys = f"/root/joining/{host_id}"
        docker.sh(master, f"rm -rf {keys} && mkdir -p {keys} && salt-key --gen-keys={host_id} "
                          f"--gen-keys-dir={keys} && cp {keys}/{host_id}.pub /etc/salt/pki/master/minions/{host_id}",
                  timeout=60)
        key = tuple(self.exec("salt", f"cat {keys}/{host_id}.{kind}", check=True).stdout for kind in ("pem", "pub"))
        self.exec("salt", f"rm -rf {keys}", check=True)
        config = self.exec("salt", f"cd {site.REPO_MOUNT}/pillar && /opt/salt/bin/python3 -m stackpillar "
                                   f"minion-config {site.SITE_MOUNT}/topology.sls {host_id}", check=True).stdout
        path = site.formula_defaults(self.settings.repo, "salt_minion")["config_file"]
        imgs = images.ensure_images(self.settings, self.release, self.progress)
        self.joined[host_id] = address
        since = self.master_jid_now()
        containers.join_host(self, host_id, address, imgs, (path, config), key)
        return self.startup_highstate(host_id, since)

    def leave(self, host_id: str) -> None:
        """Remove a host join() or masterless() started: its container, and
        its key on the master."""
        docker.docker("rm", "-f", "-v", self.container(host_id), timeout=120, check=False)
        if self.joined.pop(host_id, None):
            self.exec("salt", f"salt-key -y -d {host_id}")
        self.masterless_boxes.pop(host_id, None)

    def masterless(self, host_id: str, address: str, site_dir: Path) -> None:
        """Start a host with no master (see containers.masterless_host) whose
        site pillar root is ``site_dir``; apply with salt_call_local()."""
        imgs = images.ensure_images(self.settings, self.release, self.progress)
        self.masterless_boxes[host_id] = address
        containers.masterless_host(self, host_id, address, imgs, site_dir)

    def salt_call_local(self, host: str, *args: str, timeout: float = 1800) -> dict:
        """``salt-call --local --out=json ARGS`` on a masterless host ->
        {states, changed, failed, failures} of the state run it returns."""
        with self.progress.step(f"{host}: salt-call --local {' '.join(args)}"):
            r = self.exec(host, ["salt-call", "--local", "--out=json", *args], timeout=timeout)
        data = parse_json(r, f"{host}: salt-call --local")
        failures: list[str] = []
        counts = count_states(host, (data or {}).get("local"), failures)
        self.progress(f"  {host}: {counts['states']} states {counts['changed']} changed {counts['failed']} failed")
        return {**counts, "failures": failures}

    def kill(self, host: str) -> None:
        """Kill a host hard (SIGKILL to every process: a power cut)."""
        docker.docker("kill", self.container(host), timeout=60)

    def start(self, host: str) -> dict | None:
        """Start a killed host again; see boot()."""
        return self.boot(host, "start")

    def restart(self, host: str) -> dict | None:
        """Reboot a host cleanly (systemd stops its services first); see boot()."""
        return self.boot(host, "restart")

    def boot(self, host: str, verb: str) -> dict | None:
        """``docker start|restart`` a host, wait for its systemd and minion,
        and, when its minion runs a highstate at start (formula salt_minion),
        for that run to return: its counts (Lab.startup_highstate), else None.
        Nothing is pushed from the master."""
        since = self.master_jid_now()
        docker.docker(verb, self.container(host), timeout=120)
        containers.wait_boot(self.container(host), self.progress)
        self.wait_ping()
        config = site.formula_defaults(self.settings.repo, "salt_minion")["config_file"]
        if self.exec(host, f"grep -qs '^startup_states: highstate' {config}").returncode:
            return None
        run = self.startup_highstate(host, since)
        self.progress(f"{host}: its own highstate at start: {run['states']} states, {run['changed']} changed, "
                      f"{run['failed']} failed" + "".join(f"\n  ! {line}" for line in run["failures"][:10]))
        return run

    def host(self, host: str):
        """A testinfra Host for a lab host (docker backend)."""
        if host not in self._testinfra:
            import testinfra

            self._testinfra[host] = testinfra.get_host(f"docker://{self.container(host)}")
        return self._testinfra[host]

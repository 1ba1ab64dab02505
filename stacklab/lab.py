"""The lab: one systemd container per topology host, a salt-master, an apt cache.

Python API (the CLI in cli.py and the pytest fixtures in tests/lab/conftest.py
are thin layers over it)::

    lab = Lab("three-tier")          # a layout name or a path to a topology file
    lab.up()                         # build/reuse images, start, seed keys, wait for ping
    lab.run_orchestrate()            # salt-run state.orchestrate orchestrate.deploy
    lab.highstate()                  # {host: changed states}; raises on failed states
    lab.salt("*", "test.ping")       # parsed JSON from the master's salt CLI
    lab.exec("app1", "uname -a")     # CompletedProcess (text)
    lab.address("app1"), lab.url     # 10.77.0.11, http://127.0.0.1:8080/
    lab.set_topology(yaml_text); lab.restore_topology()
    lab.down()                       # nothing of the lab is left
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets as _secrets
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import yaml

from . import docker, images, topology
from .config import Settings
from .util import LabError, Progress, file_lock, sha256_text, wait_until

LABEL = "stacklab.managed=true"
WHEELHOUSE_MOUNT = "/srv/stacklab/wheelhouse"
APT_PROXY_PORT = 3142
MASTER_NAMES = ("salt", "master")

MASTER_CONF = """\
# Written by stacklab: the lab's master. Roots are read-only bind mounts of
# the repo, so an edit there is live at the next apply.
file_roots:
  base: [/srv/salt, /srv/formulas]
pillar_roots:
  base: [/srv/lab-pillar, /srv/pillar]
# Keys are pre-seeded by the lab; never accept unknown minions.
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


def _parallel(fn: Callable, items: Sequence, workers: int = 4) -> list:
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


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class OrchestrateResult:
    """What an orchestrate run did: ``ok``, per host ``hosts[h] = {states,
    changed, failed}`` (summed over steps; salt.state steps report states only
    for minions with changes or failures, so ``states`` undercounts),
    ``changed`` = {host: changed states, 0 for every quiet host}, the ordered
    ``steps`` [(step id, result, comment)], ``failures`` (readable lines) and
    the ``raw`` JSON."""

    ok: bool
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)
    steps: list[tuple[str, bool | None, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    raw: object = None
    seconds: float = 0.0

    @property
    def changed(self) -> dict[str, int]:
        return {h: c["changed"] for h, c in self.hosts.items()}


def count_states(host: str, states: object, failures: list[str]) -> dict[str, int]:
    """Count states/changed/failed in one minion's state.apply return."""
    counts = {"states": 0, "changed": 0, "failed": 0}
    if not isinstance(states, dict):
        # A render error comes back as a list of strings (or a string).
        counts["failed"] = 1
        text = "; ".join(states) if isinstance(states, list) else str(states)
        failures.append(f"{host}: {text.strip()[:2000]}")
        return counts
    for sid, st in sorted(states.items(), key=lambda kv: (kv[1] or {}).get("__run_num__", 0)
                          if isinstance(kv[1], dict) else 0):
        if not isinstance(st, dict):
            continue
        counts["states"] += 1
        if st.get("changes"):
            counts["changed"] += 1
        if st.get("result") is False:
            counts["failed"] += 1
            name = st.get("__id__") or sid
            why = str(st.get("comment", "")).strip()[:1500]
            ch = st.get("changes") if isinstance(st.get("changes"), dict) else {}
            if ch.get("stderr") or ch.get("stdout"):
                why += f" [retcode {ch.get('retcode')}] " + str(ch.get("stderr") or ch.get("stdout"))[-500:]
            failures.append(f"{host}: {name}: {why}")
    return counts


class Lab:
    """One layout's lab. ``layout`` is a name (pillar/layouts/<name>.sls, else
    tests/lab/topologies/<name>.sls) or a path to a topology file. ``out``
    receives progress lines (default: stderr)."""

    def __init__(self, layout: str, *, settings: Settings | None = None,
                 out: Callable[[str], None] | None = None, progress: Progress | None = None):
        self.settings = settings or Settings.from_env()
        self.progress = progress or Progress(out)
        self.topology = topology.load(layout, self.settings.layout_dirs)
        self.name = self.topology.name
        self.network = f"stacklab-{self.name}"
        self.master_address, self.proxy_address = self.topology.free_top_addresses(2)
        self.dir = self.settings.state_dir / self.name
        self.pillar_dir = self.dir / "pillar"
        self.hosts = list(self.topology.hosts)
        self.timings: dict[str, float] = {}
        self.last_highstate: object = None
        self._testinfra: dict[str, object] = {}
        self._fingerprint = ""

    # --- names -----------------------------------------------------------
    def container(self, host: str) -> str:
        """Container name of a topology host, or of 'salt'/'master', 'aptproxy'."""
        if host in MASTER_NAMES:
            return f"stacklab-{self.name}-master"
        if host == "aptproxy":
            return f"stacklab-{self.name}-aptproxy"
        if host not in self.topology.hosts:
            raise LabError(f"no host {host!r} in layout {self.name} (hosts: {', '.join(self.hosts)})")
        return f"stacklab-{self.name}-{host}"

    def address(self, host: str) -> str:
        if host in MASTER_NAMES:
            return self.master_address
        if host == "aptproxy":
            return self.proxy_address
        self.container(host)
        return self.topology.hosts[host].address

    def _labels(self, kind: str, host: str = "") -> list[str]:
        labels = [LABEL, f"stacklab.layout={self.name}", f"stacklab.kind={kind}"]
        if kind != "network":
            labels.append(f"stacklab.fingerprint={self._fingerprint}")
        if host:
            labels.append(f"stacklab.host={host}")
        return labels

    @staticmethod
    def _label_args(labels: list[str]) -> list[str]:
        return [x for lab in labels for x in ("--label", lab)]

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

    def _expected(self) -> list[str]:
        return [self.container(h) for h in ("aptproxy", "master", *self.hosts)]

    def fingerprint(self, imgs: images.ImageSet) -> str:
        """What a running lab must match to be reused: images, mounts, topology."""
        s = self.settings
        return sha256_text(imgs.base, imgs.aptproxy, str(s.repo), str(s.cache_dir),
                           str(self.pillar_dir), self.topology.text)[:16]

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

    # --- lab pillar, secrets, keys ----------------------------------------
    def _topology_include(self) -> str:
        layouts = self.settings.repo / "pillar" / "layouts"
        if self.topology.path.parent == layouts.resolve():
            return f"{{% include 'layouts/{self.name}.sls' %}}\n"
        # A topology from outside pillar/layouts (tests): its text, verbatim.
        return f"# Copied by stacklab from {self.topology.path}\n{self.topology.text}"

    def write_lab_pillar(self) -> Path:
        """(Re)write .lab/<layout>/pillar/: topology.sls (an include of the
        layout), secrets.sls (generated once, kept), overrides.sls."""
        self.pillar_dir.mkdir(parents=True, exist_ok=True)
        write_lab_pillar(self.pillar_dir, self._topology_include())
        return self.pillar_dir

    def set_topology(self, yaml_text: str) -> None:
        """Replace the lab's topology.sls with literal YAML (e.g. a role moved
        to another host); live at the next apply. Hosts must be lab hosts."""
        topo = topology.parse(yaml_text, self.name, self.pillar_dir / "topology.sls")
        extra = set(topo.hosts) - set(self.hosts)
        if extra:
            raise LabError(f"set_topology: hosts not in this lab: {', '.join(sorted(extra))}")
        _write_atomic(self.pillar_dir / "topology.sls", yaml_text, 0o644)

    def restore_topology(self) -> None:
        """Back to the layout file itself."""
        _write_atomic(self.pillar_dir / "topology.sls", self._topology_include(), 0o644)

    def _keys(self) -> dict[str, tuple[str, str]]:
        """Each minion's keypair, generated once per lab dir (pre-seeded:
        the lab accepts its minions itself, no auto_accept)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        pki = self.dir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        os.chmod(pki, 0o700)
        keys = {}
        for host in self.hosts:
            pem, pub = pki / f"{host}.pem", pki / f"{host}.pub"
            if not (pem.is_file() and pub.is_file()):
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                _write_atomic(pem, key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption()).decode(), 0o600)
                _write_atomic(pub, key.public_key().public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo).decode(), 0o644)
            keys[host] = (pem.read_text(), pub.read_text())
        return keys

    # --- up ----------------------------------------------------------------
    def up(self, *, replace: bool = False, fresh: bool = False) -> float:
        """Bring the lab up; returns the seconds it took. Another layout's lab
        is refused unless ``replace`` (then it is torn down first). If this
        layout is already up on current images, it is kept (``fresh``
        recreates it)."""
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
            with p.step("images"):
                imgs = images.ensure_images(self.settings, p)
            with p.step("app wheelhouse"):
                images.app_wheelhouse(self.settings, p)
            self.write_lab_pillar()
            keys = self._keys()
            self._fingerprint = self.fingerprint(imgs)
            if not fresh and self.is_up(self._fingerprint):
                p(f"lab {self.name} is already up; refreshing its configuration")
                self.restore_topology()
                self.wait_ping(timeout=120)
            else:
                if self.layouts_up().get(self.name) is not None:
                    p(f"recreating lab {self.name}")
                    down_layout(self.name, p)
                try:
                    self._create(imgs, keys)
                except LabError as exc:
                    raise LabError(f"{exc}\n(lab {self.name} is left as it is for inspection: "
                                   f"./lab status, ./lab exec HOST CMD; ./lab down removes it)") from exc
        took = time.monotonic() - t0
        self.timings["up"] = took
        p(f"lab {self.name} up in {took:.1f}s")
        self.progress.out(self.format_status())
        return took

    def _create(self, imgs: images.ImageSet, keys: dict[str, tuple[str, str]]) -> None:
        p = self.progress
        s = self.settings
        with p.step(f"network {self.network} ({self.topology.network})"):
            taken = [n["Name"] for n in docker.inspect(*docker.ids("network", []), kind="network")
                     if any(c.get("Subnet") == str(self.topology.network)
                            for c in (n.get("IPAM") or {}).get("Config") or [])]
            if taken:
                raise LabError(f"subnet {self.topology.network} is already used by docker network(s) "
                               f"{', '.join(taken)} (not this lab's): remove them or change the topology")
            docker.docker("network", "create", "--driver", "bridge",
                          "--subnet", str(self.topology.network), "--gateway", self.topology.gateway,
                          *self._label_args(self._labels("network") + [f"stacklab.topology={self.topology.path}"]),
                          self.network)
        s.apt_cache.mkdir(parents=True, exist_ok=True)
        s.wheelhouse.mkdir(parents=True, exist_ok=True)
        for d in ("salt", "formulas", "pillar"):
            (s.repo / d).mkdir(exist_ok=True)
        common = ["--network", self.network, "--restart", "no"]
        runs: list[tuple[str, list[str]]] = []
        runs.append((self.container("aptproxy"), [
            "--hostname", "aptproxy", "--ip", self.proxy_address, "--network-alias", "aptproxy",
            *self._label_args(self._labels("aptproxy") + [f"stacklab.address={self.proxy_address}"]),
            "-v", f"{s.apt_cache}:/var/cache/apt-cacher-ng", imgs.aptproxy]))
        runs.append((self.container("master"), [
            "--hostname", "salt", "--ip", self.master_address, "--network-alias", "salt",
            *self._label_args(self._labels("master") + [f"stacklab.address={self.master_address}"]),
            *docker.SYSTEMD_RUN_FLAGS,
            "-v", f"{s.repo / 'salt'}:/srv/salt:ro",
            "-v", f"{s.repo / 'formulas'}:/srv/formulas:ro",
            "-v", f"{s.repo / 'pillar'}:/srv/pillar:ro",
            "-v", f"{self.pillar_dir}:/srv/lab-pillar:ro",
            imgs.base]))
        port = int(os.environ.get("STACKLAB_HTTP_PORT", "8080"))
        for host in self.topology.hosts.values():
            publish: list[str] = []
            labels = self._labels("host", host.id) + [
                f"stacklab.address={host.address}", f"stacklab.roles={','.join(host.roles)}"]
            if "loadbalancer" in host.roles:
                while not _port_free(port):
                    port += 1
                publish = ["-p", f"127.0.0.1:{port}:80"]
                labels.append(f"stacklab.url=http://127.0.0.1:{port}/")
                port += 1
            runs.append((self.container(host.id), [
                "--hostname", host.id, "--ip", host.address, "--network-alias", host.id,
                *self._label_args(labels), *publish, *docker.SYSTEMD_RUN_FLAGS,
                "-v", f"{s.wheelhouse}:{WHEELHOUSE_MOUNT}:ro",
                imgs.base]))
        with p.step(f"starting {len(runs)} containers (apt proxy, master, {len(self.hosts)} hosts)"):
            _parallel(lambda r: docker.docker("run", "-d", "--name", r[0], *common, *r[1], timeout=180),
                      runs, workers=3)
        systemd = [self.container("master")] + [self.container(h) for h in self.hosts]
        with p.step("waiting for systemd to boot in every container"):
            states = _parallel(self._wait_boot, systemd)
            degraded = [s for s in states if s[1] != "running"]
            for name, state, why in degraded:
                p(f"  {name}: {state}: {why}")
        with p.step("configuring and starting salt-master"):
            self._setup_master(keys)
        with p.step(f"configuring and starting {len(self.hosts)} minions"):
            _parallel(lambda h: self._setup_minion(h, keys[h]), self.hosts)
        self.wait_ping()

    def _wait_boot(self, container: str, timeout: float = 120) -> tuple[str, str, str]:
        def check():
            r = docker.exec_(container, ["systemctl", "is-system-running"], check=False, timeout=30)
            state = r.stdout.decode(errors="replace").strip() or r.stderr.decode(errors="replace").strip()
            return state in ("running", "degraded"), state
        state = wait_until(check, timeout=timeout, what=f"{container}: systemd boot",
                           progress=self.progress, interval=0.5)
        why = ""
        if state == "degraded":
            why = docker.out("exec", container, "systemctl", "--failed", "--no-legend", "--plain",
                             check=False, timeout=30).replace("\n", "; ")
        return container, state, why

    def _setup_master(self, keys: dict[str, tuple[str, str]]) -> None:
        m = self.container("master")
        docker.put_file(m, "/etc/salt/master.d/stacklab.conf", MASTER_CONF, "0644")
        docker.sh(m, "rm -f /etc/salt/pki/master/minions/*", timeout=30)
        for host, (_pem, pub) in keys.items():
            docker.put_file(m, f"/etc/salt/pki/master/minions/{host}", pub, "0644")
        # Type=notify: returns once the master is ready.
        docker.exec_(m, ["systemctl", "enable", "--now", "salt-master"], timeout=180)

    def _setup_minion(self, host: str, key: tuple[str, str]) -> None:
        c = self.container(host)
        pem, pub = key
        docker.put_file(c, "/etc/apt/apt.conf.d/01stacklab-proxy",
                        APT_PROXY_CONF.format(address=self.proxy_address, port=APT_PROXY_PORT))
        docker.put_file(c, "/etc/salt/minion.d/stacklab.conf", MINION_CONF.format(id=host))
        docker.put_file(c, "/etc/salt/pki/minion/minion.pem", pem, "0400")
        docker.put_file(c, "/etc/salt/pki/minion/minion.pub", pub, "0644")
        docker.sh(c, "systemctl enable salt-minion && systemctl start --no-block salt-minion",
                  timeout=60)

    def wait_ping(self, timeout: float = 180) -> None:
        """Wait (bounded, with progress) until every host answers test.ping."""
        expected = set(self.hosts)

        def check():
            r = self.salt_cmd("-t", "5", "-L", ",".join(self.hosts), "test.ping", timeout=60)
            try:
                data = json.loads(r.stdout or "{}")
            except json.JSONDecodeError:
                data = {}
            ok = {h for h, v in data.items() if v is True}
            missing = sorted(expected - ok)
            return not missing, f"{len(ok)}/{len(expected)} answered, waiting for {', '.join(missing)}"

        with self.progress.step(f"waiting for test.ping from {len(expected)} minions"):
            wait_until(check, timeout=timeout, what="salt test.ping", progress=self.progress,
                       interval=1, report_every=10)

    # --- down / status ------------------------------------------------------
    def down(self) -> None:
        """Remove every container, network and volume of this layout's lab."""
        with file_lock(self.settings.state_dir / ".lock", "lab up/down", self.progress, timeout=900):
            down_layout(self.name, self.progress)

    def status(self) -> dict:
        """{'layout', 'up', 'url', 'containers': [{name, host, kind, address, roles, state, systemd, url}]}"""
        return layout_status(self.name)

    def format_status(self) -> str:
        return format_status(self.status())

    @property
    def urls(self) -> dict[str, str]:
        """Load balancer host -> published URL (http://127.0.0.1:PORT/)."""
        return {c["host"]: c["url"] for c in self.status()["containers"] if c.get("url")}

    @property
    def url(self) -> str | None:
        """URL of the first load balancer, or None."""
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

    def salt_cmd(self, *args: str, timeout: float = 900, program: str = "salt") -> subprocess.CompletedProcess:
        """Raw run of the master's salt CLI with --out=json (--static for salt)."""
        extra = ["--out=json"] + (["--static"] if program == "salt" else [])
        r = docker.exec_(self.container("master"), [program, *extra, *args], check=False, timeout=timeout)
        return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(errors="replace"),
                                           r.stderr.decode(errors="replace"))

    def salt(self, *args: str, timeout: float = 900) -> dict:
        """``salt --out=json --static ARGS`` on the master -> parsed JSON
        (whatever the exit code; raises if there is no JSON)."""
        return _parse_json(self.salt_cmd(*args, timeout=timeout), "salt " + shlex.join(args))

    def salt_run(self, *args: str, timeout: float = 3600) -> object:
        """``salt-run --out=json ARGS`` on the master -> parsed JSON."""
        r = self._heartbeat_exec(["salt-run", "--out=json", *args], "salt-run " + " ".join(args), timeout)
        return _parse_json(r, "salt-run " + shlex.join(args))

    def _heartbeat_exec(self, argv: list[str], title: str, timeout: float) -> subprocess.CompletedProcess:
        """docker exec on the master, printing a progress line every 30s."""
        cmd = ["docker", "exec", self.container("master"), *argv]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)
        start = time.monotonic()
        while True:
            try:
                out, err = proc.communicate(timeout=30)
                break
            except subprocess.TimeoutExpired:
                took = time.monotonic() - start
                if took > timeout:
                    proc.kill()
                    proc.communicate()
                    raise LabError(f"{title}: no result after {timeout:.0f}s")
                self.progress(f"  {title}: running for {took:.0f}s")
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def run_orchestrate(self, sls: str = "orchestrate.deploy", *, check: bool = True,
                        timeout: float = 3600) -> OrchestrateResult:
        """The full ordered deploy from the master. Prints a per-host summary;
        raises LabError on failure when ``check``."""
        images.app_wheelhouse(self.settings, self.progress)   # requirements may have changed
        t0 = time.monotonic()
        with self.progress.step(f"salt-run state.orchestrate {sls}"):
            r = self._heartbeat_exec(["salt-run", "--out=json", "state.orchestrate", sls],
                                     f"orchestrate {sls}", timeout)
            res = parse_orchestrate(r)
            res.seconds = time.monotonic() - t0
            # salt.state steps report only minions with changes or failures.
            for h in self.hosts:
                res.hosts.setdefault(h, {"states": 0, "changed": 0, "failed": 0})
        self.progress.out(format_orchestrate(res))
        if check and not res.ok:
            raise LabError(f"orchestrate {sls} failed:\n" + "\n".join(res.failures[:30]))
        return res

    def highstate(self, *, check: bool = True, timeout: float = 3600) -> dict[str, int]:
        """``salt '*' state.apply`` -> {host: number of states that changed}.
        Raises LabError listing failed states (when ``check``)."""
        with self.progress.step("salt '*' state.apply"):
            r = self._heartbeat_exec(["salt", "--out=json", "--static", "-t", "60", "*", "state.apply"],
                                     "highstate", timeout)
        data = _parse_json(r, "salt '*' state.apply")
        self.last_highstate = data
        failures: list[str] = []
        counts = {h: count_states(h, data.get(h), failures) for h in self.hosts if h in data}
        missing = [h for h in self.hosts if h not in data]
        for h in missing:
            failures.append(f"{h}: did not return")
        for h, c in counts.items():
            self.progress(f"  {h:12} {c['states']:4} states {c['changed']:4} changed {c['failed']:4} failed")
        if check and failures:
            raise LabError("highstate failed:\n" + "\n".join(failures[:30]))
        return {h: c["changed"] for h, c in counts.items()}

    def pillar(self, host: str) -> dict:
        """A host's compiled pillar, unmasked (Salt 3008 masks pillar output)."""
        data = self.salt(host, "pillar.items", "unmask=True", timeout=300)
        if not isinstance(data.get(host), dict):
            raise LabError(f"pillar of {host}: {data.get(host)!r}")
        return data[host]

    # --- testinfra -------------------------------------------------------------
    def host(self, host: str):
        """A testinfra Host for a lab host (docker backend)."""
        if host not in self._testinfra:
            import testinfra

            self._testinfra[host] = testinfra.get_host(f"docker://{self.container(host)}")
        return self._testinfra[host]


# --- module-level helpers (also used by the CLI) --------------------------------

def _write_atomic(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_lab_pillar(pillar_dir: Path, topology_sls: str) -> None:
    """The three lab-only pillar files. Also used by the fast tests to render
    pillar exactly as the lab's master sees it."""
    pillar_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(pillar_dir / "topology.sls", topology_sls, 0o644)
    sec = pillar_dir / "secrets.sls"
    if not sec.is_file():
        tok = _secrets.token_urlsafe
        data = {"secrets": {
            "django": {"demo": {"secret_key": tok(48)}},
            "postgres": {"users": {"demo": tok(24)}, "replication": tok(24)},
        }}
        _write_atomic(sec, "# Generated by stacklab once for this lab; kept across ups.\n"
                      + yaml.safe_dump(data, default_flow_style=False, sort_keys=True), 0o600)
    overrides = {
        "django": {"apps": {"demo": {"pip": {"no_index": True, "find_links": WHEELHOUSE_MOUNT}}}},
        "postgres": {"memory_mb": 512},
    }
    _write_atomic(pillar_dir / "overrides.sls",
                  "# Lab-only settings, merged over the stack's pillar (written by stacklab).\n"
                  + yaml.safe_dump(overrides, default_flow_style=False, sort_keys=True), 0o644)


def _parse_json(r: subprocess.CompletedProcess, what: str):
    text = (r.stdout or "").strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    # salt may print more than one JSON document (e.g. per-minion without --static).
    decoder = json.JSONDecoder()
    docs, i = [], 0
    while i < len(text):
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            break
        docs.append(obj)
        i = end
        while i < len(text) and text[i].isspace():
            i += 1
    if docs and i >= len(text):
        merged: dict = {}
        for d in docs:
            if isinstance(d, dict):
                merged.update(d)
        return merged
    raise LabError(f"{what}: exit {r.returncode}, no JSON output:\n{(r.stderr or '').strip()[-3000:]}\n"
                   f"{text[-3000:]}")


def parse_orchestrate(r: subprocess.CompletedProcess) -> OrchestrateResult:
    res = _parse_orchestrate(r)
    if r.returncode != 0 and res.ok:
        res.ok = False
        res.failures.append(f"salt-run exited {r.returncode}")
    if not res.ok:
        res.failures += _stderr_reasons(r.stderr or "")
    return res


def _parse_orchestrate(r: subprocess.CompletedProcess) -> OrchestrateResult:
    try:
        raw = _parse_json(r, "salt-run state.orchestrate")
    except LabError as exc:
        return OrchestrateResult(ok=False, failures=[str(exc)])
    data = raw.get("data", raw) if isinstance(raw, dict) else raw
    res = OrchestrateResult(ok=True, raw=raw)
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), (dict, list)):
        data = next(iter(data.values()))        # {"salt_master": {...steps...}}
    if not isinstance(data, dict):
        res.ok = False
        res.failures.append("orchestrate: " + (("; ".join(map(str, data))) if isinstance(data, list) else str(data)))
        return res
    steps = sorted(((k, v) for k, v in data.items() if isinstance(v, dict)),
                   key=lambda kv: kv[1].get("__run_num__", 0))
    for key, st in steps:
        name = st.get("__id__") or st.get("name", "?")
        ok = st.get("result")
        res.steps.append((name, ok, str(st.get("comment", ""))))
        if ok is False:
            res.ok = False
        rets = (st.get("changes") or {}).get("ret")
        # Only salt.state steps return state results per minion; salt.function
        # steps (e.g. saltutil.refresh_pillar) return the function's value.
        is_state_step = key.split("_|-")[-1] == "state"
        before = len(res.failures)
        if isinstance(rets, dict) and is_state_step:
            for host, states in rets.items():
                fails: list[str] = []
                c = count_states(host, states, fails)
                agg = res.hosts.setdefault(host, {"states": 0, "changed": 0, "failed": 0})
                for k in agg:
                    agg[k] += c[k]
                res.failures += [f"[{name}] {f}" for f in fails]
        if ok is False and len(res.failures) == before:
            detail = str(st.get("comment", "")).strip()[:2000]
            if isinstance(rets, dict) and rets:
                detail += " " + json.dumps(rets, default=str)[:1500]
            res.failures.append(f"[{name}] {detail}")
    return res


def _stderr_reasons(stderr: str, limit: int = 5) -> list[str]:
    """The distinct error lines salt printed (render errors land there)."""
    seen: list[str] = []
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith(("[CRITICAL]", "[ERROR   ] Rendering SLS")) or (
                line.startswith("salt.exceptions.") and ": " in line):
            if line not in seen:
                seen.append(line)
    return [f"salt-run: {x[:1000]}" for x in seen[-limit:]]


def format_orchestrate(res: OrchestrateResult) -> str:
    lines = [f"orchestrate: {'OK' if res.ok else 'FAILED'} in {res.seconds:.0f}s"]
    for name, ok, _comment in res.steps:
        lines.append(f"  {'ok  ' if ok else ('FAIL' if ok is False else '--  ')} {name}")
    if res.hosts:
        lines.append(f"  {'host':14} {'changed':>7} {'failed':>6}   (states, summed over steps)")
        for h, c in sorted(res.hosts.items()):
            lines.append(f"  {h:14} {c['changed']:7} {c['failed']:6}")
    for f in res.failures[:30]:
        lines.append("  ! " + f.replace("\n", "\n    "))
    return "\n".join(lines)


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


def layout_status(layout: str | None) -> dict:
    labels = [LABEL] + ([f"stacklab.layout={layout}"] if layout else [])
    rows = []
    infos = docker.inspect(*docker.ids("container", labels))

    def row(c):
        lab = c["Config"]["Labels"]
        name = c["Name"].lstrip("/")
        running = c["State"]["Running"]
        sysd = ""
        if running and lab.get("stacklab.kind") in ("host", "master"):
            r = docker.docker("exec", name, "systemctl", "is-system-running", check=False, timeout=30)
            sysd = r.stdout.decode(errors="replace").strip()
        return {
            "name": name, "layout": lab.get("stacklab.layout"), "kind": lab.get("stacklab.kind"),
            "host": lab.get("stacklab.host") or ("salt" if lab.get("stacklab.kind") == "master" else "aptproxy"),
            "address": lab.get("stacklab.address", ""), "roles": lab.get("stacklab.roles", ""),
            "state": c["State"]["Status"], "systemd": sysd, "url": lab.get("stacklab.url", ""),
        }
    order = {"master": 0, "aptproxy": 1, "host": 2}
    rows = sorted(_parallel(row, infos) if infos else [],
                  key=lambda r: (r["layout"] or "", order.get(r["kind"], 9), r["address"]))
    urls = [r["url"] for r in rows if r["url"]]
    return {"layout": layout, "up": bool(rows), "url": urls[0] if urls else None, "containers": rows}


def format_status(st: dict) -> str:
    if not st["containers"]:
        return f"lab {st['layout']}: down" if st["layout"] else "no lab is up"
    lines = []
    for layout in sorted({r["layout"] for r in st["containers"]}):
        rows = [r for r in st["containers"] if r["layout"] == layout]
        lines.append(f"lab {layout}: {len(rows)} containers on network stacklab-{layout}")
        lines.append(f"  {'HOST':10} {'ADDRESS':13} {'ROLES':36} {'STATE':8} {'SYSTEMD':9} CONTAINER")
        for r in rows:
            roles = r["roles"] or ("salt-master" if r["kind"] == "master" else
                                   "apt cache" if r["kind"] == "aptproxy" else "-")
            lines.append(f"  {r['host']:10} {r['address']:13} {roles:36} {r['state']:8} "
                         f"{r['systemd'] or '-':9} {r['name']}")
        for r in rows:
            if r["url"]:
                lines.append(f"  site ({r['host']}): {r['url']}")
    return "\n".join(lines)

"""Read a topology through the stack's own library, plus the lab's own checks.

The schema (minion ids, addresses, roles, options) is checked by
``stackpillar.check_topology`` against the role registry (pillar/roles.yaml),
the very check the pillar runs on a master; the lab adds only what concerns
its containers (names it reserves for itself, Docker's gateway address,
hostname length). Which ports a host publishes on 127.0.0.1 comes from the
registry too (``roles.<role>.lab.publish``).
"""

from __future__ import annotations

import importlib
import ipaddress
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .util import LabError

# Names of the lab's own containers (and minion ids): never topology hosts.
OUTSIDER = "outsider"
RESERVED = ("salt", "master", "aptproxy", "acme", OUTSIDER)
# A layout name becomes part of container and network names.
LAYOUT_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
HOSTNAME_MAX = 63  # the kernel's limit for a hostname (docker run --hostname)


def stackpillar(pillar_lib: Path):
    """The stack's pillar library (pillar/stackpillar), imported from ``pillar_lib``."""
    path = str(pillar_lib)
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        return importlib.import_module("stackpillar")
    except ImportError as exc:
        raise LabError(f"cannot import stackpillar from {pillar_lib}: {exc}") from exc


@dataclass
class Host:
    id: str
    address: str
    roles: list[str]
    options: dict = field(default_factory=dict)


@dataclass
class Topology:
    name: str          # layout name: the file's stem
    path: Path         # the file it came from
    network: ipaddress.IPv4Network
    hosts: dict[str, Host]   # in file order
    text: str          # the file as written
    registry: dict = field(default_factory=dict, repr=False)

    @property
    def gateway(self) -> str:
        # Docker gives a bridge network's gateway the subnet's first address.
        return str(next(self.network.hosts()))

    def free_top_addresses(self, count: int) -> list[str]:
        """Addresses for the lab's own containers (master, apt proxy, outsider, ACME server):
        the highest addresses of the subnet that no topology host uses."""
        used = {h.address for h in self.hosts.values()} | {self.gateway}
        picked: list[str] = []
        addr = self.network.broadcast_address - 1
        while len(picked) < count and addr > self.network.network_address:
            if str(addr) not in used:
                picked.append(str(addr))
            addr -= 1
        if len(picked) < count:
            raise LabError(f"{self.path}: no free address left in {self.network}")
        return picked

    def with_role(self, role: str) -> list[Host]:
        return [h for h in self.hosts.values() if role in h.roles]

    def published_ports(self, host: str) -> list[int]:
        """Ports the lab publishes on 127.0.0.1 for a host: per held role,
        the registry's ``roles.<role>.lab.publish``."""
        ports: list[int] = []
        for role in self.hosts[host].roles:
            entry = self.registry.get("roles", {}).get(role) or {}
            for port in (entry.get("lab") or {}).get("publish") or []:
                if int(port) not in ports:
                    ports.append(int(port))
        return ports


def resolve(layout: str, search: list[Path]) -> Path:
    """A layout is a name (looked up as <dir>/<name>.sls) or a path to a file."""
    p = Path(layout)
    if p.suffix in (".sls", ".yaml", ".yml") or "/" in layout:
        if p.is_file():
            return p.resolve()
        raise LabError(f"topology file not found: {layout}")
    for d in search:
        cand = d / f"{layout}.sls"
        if cand.is_file():
            return cand.resolve()
    known = sorted({c.stem for d in search if d.is_dir() for c in d.glob("*.sls")})
    raise LabError(f"unknown layout {layout!r}; known: {', '.join(known) or 'none'}")


def parse(text: str, name: str, path: Path, pillar_lib: Path) -> Topology:
    """Check ``text`` (a topology file) with stackpillar, then the lab's rules.
    Errors name the file and the key, e.g. ``FILE: topology:hosts:db1:address: ...``."""
    lib = stackpillar(pillar_lib)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LabError(f"{path}: not valid YAML: {exc}") from exc
    try:
        registry = lib.load_registry()
        checked = lib.check_topology(data, registry)
    except lib.TopologyError as exc:
        raise LabError(f"{path}: {exc}") from exc
    network = ipaddress.IPv4Network(checked["network"])
    gateway = str(next(network.hosts()))
    hosts: dict[str, Host] = {}
    for hid, spec in checked["hosts"].items():
        key = f"topology:hosts:{hid}"
        if hid in RESERVED:
            raise LabError(f"{path}: {key}: the lab reserves the names {', '.join(RESERVED)} "
                           "for its own containers")
        if len(hid) > HOSTNAME_MAX:
            raise LabError(f"{path}: {key}: longer than {HOSTNAME_MAX} characters: "
                           "a lab container cannot take it as its hostname")
        if spec["address"] == gateway:
            raise LabError(f"{path}: {key}:address: {gateway} is the lab network's gateway (Docker's)")
        hosts[hid] = Host(hid, spec["address"], list(spec["roles"]), dict(spec.get("options") or {}))
    return Topology(name=name, path=path, network=network, hosts=hosts, text=text, registry=registry)


def load(layout: str, search: list[Path], pillar_lib: Path) -> Topology:
    path = resolve(layout, search)
    name = path.stem
    if not LAYOUT_NAME_RE.match(name):
        raise LabError(f"{path}: layout name {name!r} must be lowercase letters, digits and dashes")
    return parse(path.read_text(), name, path, pillar_lib)

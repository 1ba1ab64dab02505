"""Read and check a topology: the very file the states read (pillar/layouts/*.sls)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .util import LabError

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")


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

    @property
    def gateway(self) -> str:
        # Docker gives a bridge network's gateway the subnet's first address.
        return str(next(self.network.hosts()))

    def free_top_addresses(self, count: int) -> list[str]:
        """Addresses for the lab's own containers (master, apt proxy): the
        highest addresses of the subnet that no topology host uses."""
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


def parse(text: str, name: str, path: Path) -> Topology:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LabError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("topology"), dict):
        raise LabError(f"{path}: expected a top-level `topology:` mapping")
    topo = data["topology"]
    try:
        network = ipaddress.IPv4Network(str(topo.get("network")), strict=True)
    except ValueError as exc:
        raise LabError(f"{path}: topology.network: {exc}") from exc
    hosts_in = topo.get("hosts")
    if not isinstance(hosts_in, dict) or not hosts_in:
        raise LabError(f"{path}: topology.hosts must list at least one host")
    hosts: dict[str, Host] = {}
    seen: dict[str, str] = {}
    gateway = str(next(network.hosts()))
    for hid, spec in hosts_in.items():
        hid = str(hid)
        where = f"{path}: host {hid}"
        if not NAME_RE.match(hid) or hid in ("salt", "master", "aptproxy"):
            raise LabError(f"{where}: minion id must be a lowercase hostname (not salt/master/aptproxy)")
        if not isinstance(spec, dict):
            raise LabError(f"{where}: expected a mapping with address and roles")
        try:
            addr = ipaddress.IPv4Address(str(spec.get("address")))
        except ValueError as exc:
            raise LabError(f"{where}: address: {exc}") from exc
        if addr not in network or addr in (network.network_address, network.broadcast_address):
            raise LabError(f"{where}: address {addr} is not a host address of {network}")
        if str(addr) == gateway:
            raise LabError(f"{where}: address {addr} is the network's gateway")
        if str(addr) in seen:
            raise LabError(f"{where}: address {addr} already used by {seen[str(addr)]}")
        seen[str(addr)] = hid
        # Role names are the pillar's to check (pillar/lib/topology.jinja);
        # the lab only needs the list (published ports follow `loadbalancer`).
        roles = spec.get("roles") or []
        if not isinstance(roles, list):
            raise LabError(f"{where}: roles must be a list")
        options = spec.get("options") or {}
        if not isinstance(options, dict):
            raise LabError(f"{where}: options must be a mapping")
        hosts[hid] = Host(hid, str(addr), list(roles), options)
    return Topology(name=name, path=path, network=network, hosts=hosts, text=text)


def load(layout: str, search: list[Path]) -> Topology:
    path = resolve(layout, search)
    name = path.stem
    if not NAME_RE.match(name):
        raise LabError(f"{path}: layout name {name!r} must be lowercase letters, digits and dashes")
    return parse(path.read_text(), name, path)

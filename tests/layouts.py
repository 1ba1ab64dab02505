"""The example layouts and the role registry, as both suites read them:
through pillar/stackpillar, the library the pillar itself uses."""
import pathlib

import stackpillar  # on sys.path through pytest.ini's pythonpath
import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]

REGISTRY = stackpillar.load_registry()
ROLES = list(REGISTRY["roles"])
LAYOUTS_DIR = REPO / "pillar" / "examples" / "layouts"
LAYOUTS = sorted(p.stem for p in LAYOUTS_DIR.glob("*.sls"))
EXAMPLE_APPS = REPO / "pillar" / "examples" / "apps.sls"
hosts_with = stackpillar.hosts_with


def load_layout(name):
    """A layout's topology, checked and normalised ({network, hosts: {id: {address, roles, options}}})."""
    return stackpillar.check_topology(yaml.safe_load((LAYOUTS_DIR / f"{name}.sls").read_text()), REGISTRY)


def addresses_with(topology, role):
    return [topology["hosts"][host]["address"] for host in hosts_with(topology, role)]


def role_ports(role):
    """{port name: (port or None for per-app, roles allowed to reach it)} of a role."""
    return {name: (p["port"], p["from"]) for name, p in REGISTRY["roles"][role]["ports"].items()}

"""The example layouts as both suites read them: plain YAML under `topology`."""
import pathlib

import yaml

LAYOUTS_DIR = pathlib.Path(__file__).resolve().parents[1] / "pillar" / "layouts"
LAYOUTS = sorted(p.stem for p in LAYOUTS_DIR.glob("*.sls"))


def load_layout(name):
    return yaml.safe_load((LAYOUTS_DIR / f"{name}.sls").read_text())["topology"]


def hosts_with(topology, role):
    """Minion ids holding a role, in topology order."""
    return [host for host, spec in topology["hosts"].items() if role in spec["roles"]]


def addresses_with(topology, role):
    return [topology["hosts"][host]["address"] for host in hosts_with(topology, role)]

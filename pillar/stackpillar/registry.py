"""The role registry (pillar/roles.yaml), loaded and checked for shape."""
import os

import yaml

from .errors import TopologyError

REGISTRY_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "roles.yaml")
ROLE_KEYS = {"summary", "hosts", "requires", "states", "deploy", "retire", "ports", "options",
             "lab", "expect"}
OPTION_TYPES = {"int", "port", "size"}


def load_registry(path=None):
    """The parsed registry, its shape checked (a broken entry fails here,
    naming the role, instead of somewhere downstream)."""
    path = path or REGISTRY_FILE
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    roles = (data or {}).get("roles")
    if not isinstance(roles, dict) or not roles:
        raise TopologyError("roles", f"{path} must map role names to their entries")
    for name, role in roles.items():
        key = f"roles:{name}"
        if not isinstance(role, dict):
            raise TopologyError(key, "must be a mapping")
        unknown = set(role) - ROLE_KEYS
        if unknown:
            raise TopologyError(key, f"unknown keys {sorted(unknown)} (known: {sorted(ROLE_KEYS)})")
        for required in ("hosts", "states", "deploy", "retire", "ports", "options"):
            if required not in role:
                raise TopologyError(f"{key}:{required}", "missing")
        for other in role.get("requires") or []:
            if other not in roles:
                raise TopologyError(f"{key}:requires", f"unknown role {other}")
        for port_name, port in role["ports"].items():
            for source in port.get("from") or []:
                if source != "public" and source not in roles:
                    raise TopologyError(f"{key}:ports:{port_name}:from", f"unknown role {source}")
        for option, spec in (role["options"] or {}).items():
            if spec.get("type") not in OPTION_TYPES:
                raise TopologyError(f"{key}:options:{option}:type", f"one of {sorted(OPTION_TYPES)}")
    return data


def roles_in_deploy_order(registry):
    return sorted(registry["roles"], key=lambda r: registry["roles"][r]["deploy"]["step"])

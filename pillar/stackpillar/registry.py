"""The role registry (pillar/roles.yaml), loaded and checked for shape."""
import copy
import os

import yaml

from .errors import TopologyError

REGISTRY_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "roles.yaml")
ROLE_KEYS = {"summary", "hosts", "requires", "states", "deploy", "retire", "ports", "options",
             "lab", "expect", "with"}
HOSTS_KEYS = {"min", "max", "odd", "advise"}
# What a role's `with: {<other role>: ...}` may replace while the topology
# has hosts with that other role.
WITH_KEYS = {"summary", "hosts", "states", "deploy", "retire", "ports", "expect"}
OPTION_TYPES = {"int", "port", "size"}
OPTION_KEYS = {"type", "min", "max", "same_on_every_host", "default"}
DEPLOY_KEYS = {"step", "leader_first", "rolling"}


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
        _check_entry(key, role, role, roles)
        for option, spec in (role["options"] or {}).items():
            if spec.get("type") not in OPTION_TYPES:
                raise TopologyError(f"{key}:options:{option}:type", f"one of {sorted(OPTION_TYPES)}")
            if set(spec) - OPTION_KEYS:
                raise TopologyError(f"{key}:options:{option}", f"unknown keys {sorted(set(spec) - OPTION_KEYS)}")
            default = spec.get("default")
            if default is not None and spec["type"] == "int" and not (
                    isinstance(default, int) and spec.get("min", default) <= default <= spec.get("max", default)):
                raise TopologyError(f"{key}:options:{option}:default", f"must be a whole number within the "
                                    f"option's min and max (got {default!r})")
        for other, variant in (role.get("with") or {}).items():
            vkey = f"{key}:with:{other}"
            if other not in roles or other == name:
                raise TopologyError(vkey, f"unknown role {other}")
            if not isinstance(variant, dict) or set(variant) - WITH_KEYS:
                raise TopologyError(vkey, f"may replace only {sorted(WITH_KEYS)}")
            _check_entry(vkey, variant, role, roles)
    return data


def _check_entry(key, entry, role, roles):
    """The parts a `with` variant may replace too: hosts, deploy and ports."""
    if "deploy" in entry:
        _check_deploy(f"{key}:deploy", entry["deploy"])
    hosts = entry.get("hosts")
    if hosts is not None:
        if not isinstance(hosts, dict) or set(hosts) - HOSTS_KEYS:
            raise TopologyError(f"{key}:hosts", f"a mapping of {sorted(HOSTS_KEYS)}")
        advise = hosts.get("advise")
        if advise is not None and (not isinstance(advise, dict) or not isinstance(advise.get("min"), int)
                                   or not advise.get("why")):
            raise TopologyError(f"{key}:hosts:advise", "needs min (a number of hosts) and why")
    for port_name, port in (entry.get("ports") or {}).items():
        for source in port.get("from") or []:
            if source != "public" and source not in roles:
                raise TopologyError(f"{key}:ports:{port_name}:from", f"unknown role {source}")
        option = port.get("option")
        if option is not None and option not in (role.get("options") or {}):
            raise TopologyError(f"{key}:ports:{port_name}:option", f"{option} is not an option of the role")


def _check_deploy(key, deploy):
    """deploy: {step, leader_first?, rolling?}: a misspelt flag would be
    ignored without a word, and steps that are not numbers cannot be
    ordered."""
    if not isinstance(deploy, dict):
        raise TopologyError(key, f"a mapping of {sorted(DEPLOY_KEYS)}")
    unknown = set(deploy) - DEPLOY_KEYS
    if unknown:
        raise TopologyError(key, f"unknown keys {sorted(unknown)} (known: {sorted(DEPLOY_KEYS)})")
    step = deploy.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        raise TopologyError(f"{key}:step", f"must be a whole number (got {step!r})")
    for flag in ("leader_first", "rolling"):
        if not isinstance(deploy.get(flag, False), bool):
            raise TopologyError(f"{key}:{flag}", f"must be true or false (got {deploy[flag]!r})")


def effective_role(registry, role, present):
    """The role's entry while the roles in ``present`` have hosts: each
    ``with`` variant of a present role replaces the keys it gives."""
    entry = {k: v for k, v in registry["roles"][role].items() if k != "with"}
    for other, variant in (registry["roles"][role].get("with") or {}).items():
        if other in present:
            entry.update(variant)
    return entry


def present_roles(registry, topology):
    """The registered roles that some host of ``topology`` holds."""
    return {r for r in registry["roles"] if any(r in host["roles"] for host in topology["hosts"].values())}


def resolve_registry(registry, topology):
    """The registry as it applies to ``topology`` (a checked one): every
    role's entry with the variants of the roles the topology has hosts for."""
    present = present_roles(registry, topology)
    resolved = copy.deepcopy(registry)
    resolved["roles"] = {r: copy.deepcopy(effective_role(registry, r, present)) for r in registry["roles"]}
    return resolved


def roles_in_deploy_order(registry):
    return sorted(registry["roles"], key=lambda r: registry["roles"][r]["deploy"]["step"])


def related_roles(registry, role):
    """The roles tied to ``role`` by requires: those it requires and those
    requiring it."""
    roles = registry["roles"]
    return [other for other in roles
            if other in (roles[role].get("requires") or []) or role in (roles[other].get("requires") or [])]

"""Each host's pillar, and the ordered deploy's steps, from the site data
and the registry."""
from collections import namedtuple

from . import adapters
from .connections import max_connections
from .firewall import host_firewall
from .registry import related_roles, resolve_registry, roles_in_deploy_order
from .salt_minion import minion_config
from .site import check_apps
from .timeouts import check_timeouts
from .topology import check_topology, hosts_with, topology_warnings


def checked_site(site, registry):
    """(topology, apps) checked, each on its own and against each other
    (timeouts that agree, connections that fit), or TopologyError naming
    the wrong key and the host."""
    topology, apps = check_topology(site["topology"], registry), check_apps(site["apps"])
    check_timeouts(apps, hosts_with(topology, "app"))
    max_connections(topology, apps, registry)
    return topology, apps


def site_registry(site, registry):
    """The registry as the site's topology has it: each role's ``with``
    variants applied (e.g. database's states with dcs hosts). What the
    ordered deploy and the lab's checks read a role's states, ports and
    expectations from."""
    topology, _apps = checked_site(site, registry)
    return resolve_registry(registry, topology)


def build_pillar(host_id, site, registry):
    """The pillar of ``host_id``: the stack's view (roles, states, what to
    retire) merged with every held role's adapter output. {} for a minion
    the topology does not name."""
    topology, apps = checked_site(site, registry)
    if host_id not in topology["hosts"]:
        return {}
    warnings = topology_warnings(topology, registry)
    # Each role's entry as this topology has it (its `with` variants).
    registry = resolve_registry(registry, topology)
    ctx = adapters.Context(host_id, topology, apps, site["secrets"], registry)
    held = [r for r in roles_in_deploy_order(registry) if r in ctx.roles]
    pillar = {
        "stack": {
            "id": host_id,
            "roles": ctx.roles,
            "address": ctx.address,
            "network": topology["network"],
            "hosts": {h: {"address": v["address"], "roles": v["roles"]}
                      for h, v in topology["hosts"].items()},
            "hosts_by_role": {r: hosts_with(topology, r) for r in registry["roles"]},
            # The SLS this host applies, in deploy order, and those that
            # remove roles it no longer holds.
            "states": [s for r in held for s in registry["roles"][r]["states"]],
            "retire": [s for r in registry["roles"] if r not in ctx.roles
                       for s in registry["roles"][r]["retire"]],
        },
        # Inbound: what the roles held here listen on, to the roles it serves.
        "firewall": host_firewall(topology, registry, apps, host_id),
    }
    config = minion_config(topology, host_id)
    if config:
        # The minion's own settings: converge at every boot (formula salt_minion).
        pillar["salt_minion"] = {"config": config}
    if warnings:
        # Allowed but advised against (e.g. one dcs host): said, not refused.
        pillar["stack"]["warnings"] = warnings
    for role in held:
        _merge(pillar, getattr(adapters, role)(ctx))
    return pillar


# One step of the ordered deploy: its name (the orchestrate state's id), the
# SLS it applies, the minion ids it targets, and the names of the earlier
# steps it waits for.
Step = namedtuple("Step", "name states hosts needs")


def deploy_plan(site, registry):
    """The ordered deploy: (every minion id, [Step]), the steps as
    deploy_steps gives them for the site's topology. Every host's pillar
    is built first, as its minion will build it, so whatever would fail a
    host's pillar (a secret missing, a placeholder or weak) stops the
    deploy before its first step, naming the key and the host: the first
    in topology order."""
    topology, _apps = checked_site(site, registry)
    for host_id in topology["hosts"]:
        build_pillar(host_id, site, registry)
    return list(topology["hosts"]), deploy_steps(topology, registry)


def deploy_steps(topology, registry):
    """[Step] of a checked topology, in deploy order (the roles' steps,
    lower first); the SLS are the role's states as the topology has them
    (its registry variants); roles without hosts have no step. A role
    marked leader_first runs on its first host alone first (<role>-leader);
    a rolling role's other hosts follow in batches of topology:rolling_batch
    (<role>-batch-N), else all of them at once (<role>).

    A step's needs, the earlier steps it waits for: a role's first step
    waits for every step of the roles with a lower deploy step tied to it
    by requires, either way (app requires the database; etcd, requiring
    the database, comes before Patroni's members); each further step of a
    role for the one before it; and any step for every earlier step
    targeting one of its hosts, since two state runs on one minion
    conflict. Steps that do not wait for each other may run at once; with
    every role on one host, each step waits for all before it."""
    registry = resolve_registry(registry, topology)
    steps, of_role = [], {}
    for role in roles_in_deploy_order(registry):
        holders = hosts_with(topology, role)
        if not holders:
            continue
        entry = registry["roles"][role]
        deploy = entry["deploy"]
        groups = []
        if deploy.get("leader_first"):
            groups.append((f"{role}-leader", holders[:1]))
        if not deploy.get("rolling"):
            groups.append((role, holders))
        else:
            rest = holders[1:] if deploy.get("leader_first") else holders
            size = topology["rolling_batch"]
            groups += [(f"{role}-batch-{number}", rest[first:first + size])
                       for number, first in enumerate(range(0, len(rest), size), start=1)]
        earlier_related = [other for other in related_roles(registry, role)
                           if registry["roles"][other]["deploy"]["step"] < deploy["step"]]
        own = of_role.setdefault(role, [])
        for name, hosts in groups:
            waits = set(own[-1:]) if own else {s for other in earlier_related for s in of_role.get(other, [])}
            waits |= {s.name for s in steps if set(s.hosts) & set(hosts)}
            steps.append(Step(name, entry["states"], hosts, [s.name for s in steps if s.name in waits]))
            own.append(name)
    return steps


def _merge(into, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value

"""Each host's pillar, and the ordered deploy's steps, from the site data
and the registry."""
from . import adapters
from .connections import max_connections
from .firewall import host_firewall
from .registry import resolve_registry, roles_in_deploy_order
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
        # Every host publishes the addresses it really has on the private
        # network, so a topology address no host holds shows before a deploy.
        "mine_functions": {"private_addresses": [{"mine_function": "network.ip_addrs"},
                                                 {"cidr": topology["network"]}]},
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


def deploy_plan(site, registry):
    """The ordered deploy: (every minion id, [(step, [SLS], [minion ids])]),
    each step's hosts done before the next starts; the SLS are the role's
    states as the site's topology has them (its registry variants). A role
    marked leader_first runs on its first host alone first; a rolling role's
    other hosts follow in batches of topology:rolling_batch (steps
    <role>-batch-N); roles without hosts have no step. Every host's pillar is built first, as its minion
    will build it, so whatever would fail a host's pillar (a secret
    missing, a placeholder or weak) stops the deploy before its first step,
    naming the key and the host: the first in topology order."""
    topology, _apps = checked_site(site, registry)
    for host_id in topology["hosts"]:
        build_pillar(host_id, site, registry)
    registry = resolve_registry(registry, topology)
    steps = []
    for role in roles_in_deploy_order(registry):
        holders = hosts_with(topology, role)
        if not holders:
            continue
        entry = registry["roles"][role]
        if entry["deploy"].get("leader_first"):
            steps.append((f"{role}-leader", entry["states"], holders[:1]))
        if not entry["deploy"].get("rolling"):
            steps.append((role, entry["states"], holders))
            continue
        rest = holders[1:] if entry["deploy"].get("leader_first") else holders
        size = topology["rolling_batch"]
        for number, first in enumerate(range(0, len(rest), size), start=1):
            steps.append((f"{role}-batch-{number}", entry["states"], rest[first:first + size]))
    return list(topology["hosts"]), steps


def _merge(into, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value

"""The plan of a site, from the site data alone, before anything runs: per
host its roles, address, the services the registry expects on it, what it
listens on (and to whom) and the peers it talks to, on which ports.

Who talks to whom is the firewall read the other way round (one piece of
logic, firewall.role_listeners): a host talks to a peer on a port when the
peer's firewall lets it in there."""
from .firewall import role_listeners
from .registry import resolve_registry

PEER_COLUMNS = ("HOST", "ROLES", "ADDRESS", "SERVICES", "REACHED BY (port <- peers)", "TALKS TO (peer:port)")


class _Unknown(dict):
    """Leaves a fact nobody gave in the text: {postgres_version}."""

    def __missing__(self, key):
        return "{" + key + "}"


def host_services(registry, roles, facts=None):
    """The services the registry expects on a holder of ``roles``, in role
    order, formatted with ``facts`` (e.g. {'postgres_version': '17'}; a
    fact not given stays as its placeholder)."""
    names = [s for role in roles for s in registry["roles"][role]["expect"]["services"]]
    return list(dict.fromkeys(name.format_map(_Unknown(facts or {})) for name in names))


def site_plan(topology, apps, registry, facts=None):
    """{host: {roles, address, services, listens, talks_to}} in topology
    order, for a checked topology and apps. ``listens``: [{port, role,
    name, from}] (from: peer hosts, or ['public']); ``talks_to``: [{peer,
    address, port, role, name}], the peer's listeners that let this host
    in. ``facts``: {host: {fact: value}} for the services' placeholders."""
    registry = resolve_registry(registry, topology)
    listeners = {h: role_listeners(topology, registry, apps, h) for h in topology["hosts"]}
    plan = {}
    for host_id, host in topology["hosts"].items():
        plan[host_id] = {
            "roles": list(host["roles"]),
            "address": host["address"],
            "services": host_services(registry, host["roles"], (facts or {}).get(host_id)),
            "listens": [{"port": item["port"], "role": item["role"], "name": item["name"],
                         "from": ["public"] if item["peers"] is None else item["peers"]}
                        for item in listeners[host_id]],
            "talks_to": [{"peer": peer, "address": topology["hosts"][peer]["address"], "port": item["port"],
                          "role": item["role"], "name": item["name"]}
                         for peer in topology["hosts"] if peer != host_id
                         for item in listeners[peer] if item["peers"] and host_id in item["peers"]],
        }
    return plan


def format_plan(plan):
    """The plan as a text table: one block per host, a line per listener
    and per peer."""
    rows = []
    for host_id, host in plan.items():
        listens = [f"{item['port']} {item['role']} {item['name']} <- {', '.join(item['from'])}"
                   for item in host["listens"]]
        talks = [f"{item['peer']}:{item['port']} ({item['role']} {item['name']})" for item in host["talks_to"]]
        lines = max(1, len(host["services"]), len(listens), len(talks))
        for i in range(lines):
            rows.append((host_id if i == 0 else "", ", ".join(host["roles"]) or "-" if i == 0 else "",
                         host["address"] if i == 0 else "", _at(host["services"], i), _at(listens, i),
                         _at(talks, i)))
    return table(PEER_COLUMNS, rows)


def table(columns, rows):
    """Plain text columns, each as wide as its widest cell."""
    widths = [max([len(c)] + [len(str(r[i])) for r in rows]) for i, c in enumerate(columns)]
    lines = [columns] + rows
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def _at(items, index):
    return items[index] if index < len(items) else ""

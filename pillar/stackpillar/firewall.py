"""Each host's inbound firewall, as data: the registry's ports of the roles
the host holds, each open to the addresses of the hosts holding a role the
port lists in `from` (anyone for `public`), and ssh from the admin networks.
The firewall formula writes it as one nftables table; the plan (plan.py)
reads the same ports as who talks to whom."""
from .salt_minion import master_address
from .topology import hosts_with, role_port

SSH_PORT = 22
# Salt's publisher and request server, on a master that is a topology host.
SALT_MASTER_PORTS = (4505, 4506)


def role_listeners(topology, registry, apps, host_id):
    """[{role, name, port, from, peers}] for every port the roles held by
    ``host_id`` listen on, in registry order; ``peers``: the other hosts
    allowed in (topology order), None when the port is public. A port whose
    only peers are this host is left out (a peer on the same host needs no
    server, nor a rule). ``registry`` is resolved for the topology."""
    listeners = []
    for role in topology["hosts"][host_id]["roles"]:
        for name, spec in registry["roles"][role]["ports"].items():
            peers = None
            if "public" not in spec["from"]:
                allowed = {h for source in spec["from"] for h in hosts_with(topology, source)} - {host_id}
                peers = [h for h in topology["hosts"] if h in allowed]
                if not peers:
                    continue  # every host it is open to is this one
            port = role_port(topology, registry, host_id, role, name)
            for number in [port] if port else [app["port"] for _, app in sorted(apps.items())]:
                listeners.append({"role": role, "name": name, "port": number, "from": spec["from"],
                                  "peers": peers})
    return listeners


def host_firewall(topology, registry, apps, host_id):
    """{'rules': [{port, sources, why}], 'salt_master': {address, ports} or
    None} for ``host_id``, rules ordered by port; sources None = any address.
    ``registry`` is resolved for the topology (its `with` variants applied).
    The host's own address needs no rule: its traffic to itself arrives on
    lo. salt_master: the master this host's minion connects to (none on the
    master itself, or without one)."""
    # Without admin_networks ssh stays open to all (topology_warnings says so).
    rules = [{"port": SSH_PORT, "sources": topology.get("admin_networks"), "why": "ssh from the admin networks"}]
    for listener in role_listeners(topology, registry, apps, host_id):
        peers = listener["peers"]
        rules.append({"port": listener["port"],
                      "sources": None if peers is None else [topology["hosts"][h]["address"] for h in peers],
                      "why": f"{listener['role']} {listener['name']} from {', '.join(listener['from'])}"})
    master = None
    if topology.get("salt_master") == host_id:
        minions = [address for h, address in _addresses(topology) if h != host_id]
        rules += [{"port": port, "sources": minions, "why": "salt-master from every host"}
                  for port in SALT_MASTER_PORTS if minions]
    else:
        master = master_address(topology)
    return {"rules": sorted(rules, key=lambda rule: rule["port"]),
            "salt_master": {"address": master, "ports": list(SALT_MASTER_PORTS)} if master else None}


def _addresses(topology):
    return [(h, spec["address"]) for h, spec in topology["hosts"].items()]

"""The topology check: the one place that knows the topology's schema.

A topology maps minion ids to an address on the private network, the roles
the host plays and per-role options. Every error names the key that is
wrong, with the host in it: ``topology:hosts:<id>:options:<role>:<key>``.
"""
import ipaddress
import re

from .errors import TopologyError
from .registry import effective_role, present_roles, resolve_registry

# A lowercase hostname or FQDN (Salt's default minion id is the host's FQDN).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
MINION_ID = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
HOST_KEYS = ("address", "roles", "options")
TOPOLOGY_KEYS = ("network", "hosts", "admin_networks", "salt_master", "rolling_batch")
# Hosts of a rolling role (registry deploy:rolling) the ordered deploy
# applies at once, after the leader.
ROLLING_BATCH = 1
SIZE = re.compile(r"^[0-9]+[kmg]?$", re.I)


def hosts_with(topology, role):
    """Minion ids holding ``role``, in topology order."""
    return [hid for hid, host in topology["hosts"].items() if role in host["roles"]]


def check_topology(data, registry):
    """``data`` is a topology file's content ({'topology': {...}}). Returns
    {'network': str, 'hosts': {id: {'address', 'roles', 'options'}}} in file
    order, or raises TopologyError naming the first wrong key."""
    topology = (data or {}).get("topology") if isinstance(data, dict) else None
    if not isinstance(topology, dict):
        raise TopologyError("topology", "missing: the site's topology.sls must define the key "
                            "topology (see pillar/examples/layouts/)")
    _unknown_keys("topology", topology, TOPOLOGY_KEYS)
    network = _network(topology.get("network"))
    hosts = topology.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        raise TopologyError("topology:hosts", "must map minion ids to {address, roles}")
    roles = registry["roles"]
    checked, used = {}, {}
    for hid, host in hosts.items():
        key = f"topology:hosts:{hid}"
        if not isinstance(hid, str) or not MINION_ID.match(hid) or len(hid) > 253:
            raise TopologyError(key, "a minion id must be a lowercase hostname or FQDN, "
                                "e.g. app1 or app-01.example.internal")
        if not isinstance(host, dict):
            raise TopologyError(key, "must be a mapping with address and roles")
        _unknown_keys(key, host, HOST_KEYS)
        address = _address(key, host.get("address"), network, used)
        used[address] = hid
        held = _roles(key, host.get("roles"), roles)
        options = _options(key, host.get("options"), held, roles)
        checked[hid] = {"address": address, "roles": held, "options": options}
    result = {"network": str(network), "hosts": checked}
    if "admin_networks" in topology:
        result["admin_networks"] = _admin_networks(topology["admin_networks"])
    if "salt_master" in topology:
        result["salt_master"] = _salt_master(topology["salt_master"], checked)
    result["rolling_batch"] = _rolling_batch(topology.get("rolling_batch", ROLLING_BATCH))
    _counts(result, registry)
    _same_on_every_host(result, roles)
    _ports_distinct(result, resolve_registry(registry, result))
    return result


def topology_warnings(topology, registry):
    """What a checked topology allows but the registry advises against, one
    sentence each (pillar stack:warnings, `python3 -m stackpillar check`)."""
    present = present_roles(registry, topology)
    warnings = []
    for role in registry["roles"]:
        advise = effective_role(registry, role, present)["hosts"].get("advise")
        holders = hosts_with(topology, role)
        if advise and 0 < len(holders) < advise["min"]:
            warnings.append(f"topology:hosts: the role {role} has {_count(len(holders))} "
                            f"({', '.join(holders)}), fewer than the {advise['min']} advised: "
                            f"{' '.join(advise['why'].split())}")
    if "admin_networks" not in topology:
        warnings.append("topology:admin_networks is not set: ssh is open to every address on every host; "
                        "list the networks admins connect from (a bastion, a VPN)")
    return warnings


def _count(n):
    return "one host" if n == 1 else f"{n} hosts"


def _unknown_keys(key, mapping, known):
    for name in mapping:
        if name not in known:
            raise TopologyError(f"{key}:{name}", f"unknown key (known: {', '.join(known)})")


def _network(value):
    try:
        network = ipaddress.IPv4Network(str(value), strict=True)
        if "/" not in str(value):
            raise ValueError("no prefix length")
    except ValueError as exc:
        raise TopologyError("topology:network", "must be the private IPv4 network in CIDR form, "
                            f"e.g. 10.77.0.0/24 (got {value!r}: {exc})") from None
    return network


def _admin_networks(value):
    """The networks ssh is open to on every host, in CIDR form (v4 or v6)."""
    key = "topology:admin_networks"
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise TopologyError(key, "must be a list of networks in CIDR form, e.g. [192.0.2.0/24]")
    try:
        return [str(ipaddress.ip_network(str(v), strict=True)) for v in value]
    except ValueError as exc:
        raise TopologyError(key, f"{exc} (a network in CIDR form, host bits zero)") from None


def _rolling_batch(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TopologyError("topology:rolling_batch", "must be a whole number of hosts, 1 or more: how many "
                            f"app hosts a deploy reloads at once after the leader (got {value!r})")
    return value


def _salt_master(value, hosts):
    """The master's minion id when it is a topology host (its firewall then
    lets every host reach Salt's ports), else its address."""
    if isinstance(value, str) and value in hosts:
        return value
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise TopologyError("topology:salt_master", f"must be a host of topology:hosts or an address "
                            f"(got {value!r})") from None


def _address(key, value, network, used):
    try:
        address = ipaddress.IPv4Address(str(value))
    except ValueError:
        raise TopologyError(f"{key}:address", f"must be an IPv4 address (got {value!r})") from None
    if address not in network or address in (network.network_address, network.broadcast_address):
        raise TopologyError(f"{key}:address", f"{address} is outside topology:network {network} "
                            "(or is its network or broadcast address)")
    if str(address) in used:
        raise TopologyError(f"{key}:address", f"{address} is already used by {used[str(address)]}")
    return str(address)


def _roles(key, value, roles):
    # An empty list is a host that holds nothing (yet, or any more: every
    # role it had is retired, its data kept).
    if isinstance(value, str) or not isinstance(value, list):
        raise TopologyError(f"{key}:roles", f"must be a list of {', '.join(roles)}")
    for role in value:
        if role not in roles:
            raise TopologyError(f"{key}:roles", f"unknown role {role} (known: {', '.join(roles)})")
    if len(set(value)) != len(value):
        raise TopologyError(f"{key}:roles", "lists a role twice")
    return list(value)


def _options(key, value, held, roles):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TopologyError(f"{key}:options", "must map roles to their options")
    checked = {}
    for role, given in value.items():
        okey = f"{key}:options:{role}"
        if role not in held:
            raise TopologyError(okey, f"options for a role this host does not hold "
                                f"(it holds {', '.join(held)})")
        if not isinstance(given, dict):
            raise TopologyError(okey, "must be a mapping of option: value")
        schema = roles[role]["options"] or {}
        checked[role] = {}
        for name, option in given.items():
            if name not in schema:
                known = ", ".join(schema) or "none"
                raise TopologyError(f"{okey}:{name}", f"unknown option for role {role} (known: {known})")
            checked[role][name] = _option_value(f"{okey}:{name}", option, schema[name])
    return checked


def _option_value(key, value, spec):
    kind = spec["type"]
    if kind == "size":
        if isinstance(value, bool) or not SIZE.match(str(value)):
            raise TopologyError(key, f"must be a size such as 512k, 64m or 1g (got {value!r})")
        return str(value)
    low, high = (1, 65535) if kind == "port" else (spec.get("min"), spec.get("max"))
    if isinstance(value, bool) or not isinstance(value, int):
        raise TopologyError(key, f"must be a whole number (got {value!r})")
    if (low is not None and value < low) or (high is not None and value > high):
        raise TopologyError(key, f"must be between {low} and {high} (got {value})")
    return value


def _counts(topology, registry):
    present = present_roles(registry, topology)
    for role in registry["roles"]:
        entry = effective_role(registry, role, present)
        holders = hosts_with(topology, role)
        low, high = entry["hosts"].get("min") or 0, entry["hosts"].get("max")
        if len(holders) < low:
            raise TopologyError("topology:hosts", f"no host has the role {role}" if not holders else
                                f"the role {role} needs at least {low} hosts (got {', '.join(holders)})")
        if high is not None and len(holders) > high:
            limit = "only one host" if high == 1 else f"at most {high} hosts"
            without, add = _what_allows_more(registry, role, present, len(holders))
            raise TopologyError("topology:hosts", f"{limit} may hold the role {role}{without}; "
                                f"got {', '.join(holders)}{add}")
        if entry["hosts"].get("odd") and holders and len(holders) % 2 == 0:
            raise TopologyError("topology:hosts", f"the role {role} needs an odd number of hosts "
                                f"(got {len(holders)}: {', '.join(holders)}): add one host with the "
                                f"role {role} or remove one (a majority of them must be up, so "
                                f"{len(holders)} hosts tolerate no more failures than {len(holders) - 1})")
        for needed in entry.get("requires") or []:
            if holders and not hosts_with(topology, needed):
                raise TopologyError("topology:hosts", f"the role {role} needs a host with the role "
                                    f"{needed}")


def _what_allows_more(registry, role, present, count):
    """(" without hosts with the role X", ": add ...") when hosts with a role
    the topology lacks would let ``count`` hosts hold ``role``; else ("", "")."""
    for other, variant in (registry["roles"][role].get("with") or {}).items():
        high = (variant.get("hosts") or {}).get("max", 0)
        if other in present or (high is not None and count > high):
            continue
        spec = registry["roles"][other]["hosts"]
        advice = [w for w, on in (("an odd number", spec.get("odd")),
                                  (f"{(spec.get('advise') or {}).get('min')} or more advised",
                                   spec.get("advise"))) if on]
        summary = variant.get("summary") or registry["roles"][role].get("summary", role)
        return (f" without hosts with the role {other}",
                f": add hosts with the role {other}" + (f" ({', '.join(advice)})" if advice else "")
                + f" for {summary}, or keep the role {role} on one host")
    return "", ""


def _same_on_every_host(topology, roles):
    """Options marked same_on_every_host: every holder gives the same value."""
    for role, entry in roles.items():
        holders = hosts_with(topology, role)
        for name, spec in (entry["options"] or {}).items():
            if not spec.get("same_on_every_host") or len(holders) < 2:
                continue
            values = {h: topology["hosts"][h]["options"].get(role, {}).get(name) for h in holders}
            if len(set(values.values())) > 1:
                first = holders[0]
                odd = next(h for h in holders if values[h] != values[first])
                given = ", ".join(f"{h}: {'unset' if v is None else v}" for h, v in values.items())
                raise TopologyError(f"topology:hosts:{odd}:options:{role}:{name}",
                                    f"must be the same on every host with the role {role} ({given})")


def role_option(topology, registry, host_id, role, name):
    """A holder's option: its own value, else the registry's default (None
    when the registry gives none)."""
    given = topology["hosts"][host_id]["options"].get(role, {})
    return given.get(name, registry["roles"][role]["options"][name].get("default"))


def role_port(topology, registry, host_id, role, name):
    """The port a holder of ``role`` listens on for ``name``: the registry's,
    unless the port names an option the host's options for the role set."""
    spec = registry["roles"][role]["ports"][name]
    option = spec.get("option")
    if option is None:
        return spec["port"]
    return topology["hosts"][host_id]["options"].get(role, {}).get(option, spec["port"])


def _ports_distinct(topology, registry):
    """Two roles on one host never listen on the same port."""
    for hid, host in topology["hosts"].items():
        seen = {}
        for role in host["roles"]:
            for name, port in registry["roles"][role]["ports"].items():
                number = role_port(topology, registry, hid, role, name)
                if number is None:
                    continue  # per app: checked with the apps
                if number in seen and seen[number] != role:
                    raise TopologyError(f"topology:hosts:{hid}:options:{role}:port",
                                        f"port {number} is already used by the role {seen[number]} "
                                        "on this host")
                seen[number] = role

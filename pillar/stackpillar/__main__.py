"""python3 -m stackpillar check TOPOLOGY_FILE [--json]
python3 -m stackpillar pillar SITE_DIR MINION_ID
python3 -m stackpillar minion-config TOPOLOGY_FILE MINION_ID
python3 -m stackpillar plan SITE_DIR [--json]

check: checks a topology file against the registry (the same check the pillar
runs) and prints it normalised: a summary, or JSON for other tools (the
Vagrantfile). Exit 2 with the wrong key named on stderr; warnings (allowed
but advised against, e.g. one dcs host) go to stderr too, exit 0.

pillar: prints, as YAML, the pillar a minion gets from the site data in
SITE_DIR (topology.sls, apps.sls, secrets.sls): what pillar/stack.sls gives
it on a master, for salt-call --local or a look without one.

minion-config: prints the minion configuration a topology host gets from
topology:salt_master (/etc/salt/minion.d/django-stack.conf, formula
salt_minion): what a new host needs, with its pre-seeded key, to join by
booting. Exit 2 when the topology names no master or not that host.

plan: prints, from topology.sls and apps.sls in SITE_DIR alone (no
secrets, no master), each host's roles, address, expected services, who
reaches it on which port and the peers it talks to (`salt-run stack.plan`
adds what a state.apply would change on each host)."""
import argparse
import json
import sys

import yaml

from . import TopologyError, minion_config, build_pillar, check_topology, load_registry, load_site, topology_warnings
from .build import checked_site
from .plan import format_plan, site_plan


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m stackpillar")
    sub = parser.add_subparsers(dest="verb", required=True)
    check = sub.add_parser("check", help="check a topology file")
    check.add_argument("file")
    check.add_argument("--json", action="store_true", help="print the checked topology as JSON")
    pillar = sub.add_parser("pillar", help="print a minion's pillar from a site directory")
    pillar.add_argument("site")
    pillar.add_argument("minion_id")
    joining = sub.add_parser("minion-config", help="print a host's minion configuration")
    joining.add_argument("file")
    joining.add_argument("minion_id")
    plan = sub.add_parser("plan", help="print who runs what and talks to whom, from a site directory")
    plan.add_argument("site")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    args = parser.parse_args(argv)
    registry = load_registry()
    if args.verb == "plan":
        try:
            topology, apps = checked_site(load_site([args.site], ("topology.sls", "apps.sls")), registry)
        except TopologyError as exc:
            print(f"{args.site}: {exc}", file=sys.stderr)
            return 2
        for warning in topology_warnings(topology, registry):
            print(f"{args.site}: warning: {warning}", file=sys.stderr)
        data = site_plan(topology, apps, registry)
        print(json.dumps(data, indent=2) if args.json else format_plan(data))
        return 0
    if args.verb == "pillar":
        try:
            data = build_pillar(args.minion_id, load_site([args.site]), registry)
        except TopologyError as exc:
            print(f"{args.site}: {exc}", file=sys.stderr)
            return 2
        # No anchors: each value written out where it is used.
        dumper = type("Dumper", (yaml.SafeDumper,), {"ignore_aliases": lambda self, data: True})
        print(yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False), end="")
        return 0
    try:
        with open(args.file, encoding="utf-8") as fh:
            topology = check_topology(yaml.safe_load(fh), registry)
    except (OSError, yaml.YAMLError) as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    except TopologyError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    if args.verb == "minion-config":
        if args.minion_id not in topology["hosts"]:
            print(f"{args.file}: topology:hosts has no {args.minion_id}: add the host there first",
                  file=sys.stderr)
            return 2
        config = minion_config(topology, args.minion_id)
        if config is None:
            print(f"{args.file}: topology:salt_master is not set: hosts are masterless", file=sys.stderr)
            return 2
        print(config, end="")
        return 0
    for warning in topology_warnings(topology, registry):
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(topology, indent=2))
    else:
        for hid, host in topology["hosts"].items():
            print(f"{hid:30} {host['address']:15} {', '.join(host['roles'])}")
    return 0


sys.exit(main())

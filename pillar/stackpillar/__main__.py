"""python3 -m stackpillar check TOPOLOGY_FILE [--json]

Checks a topology file against the registry (the same check the pillar
runs) and prints it normalised: a summary, or JSON for other tools (the
Vagrantfile). Exit 2 with the wrong key named on stderr."""
import argparse
import json
import sys

import yaml

from . import TopologyError, check_topology, load_registry


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m stackpillar")
    sub = parser.add_subparsers(dest="verb", required=True)
    check = sub.add_parser("check", help="check a topology file")
    check.add_argument("file")
    check.add_argument("--json", action="store_true", help="print the checked topology as JSON")
    args = parser.parse_args(argv)
    registry = load_registry()
    try:
        with open(args.file, encoding="utf-8") as fh:
            topology = check_topology(yaml.safe_load(fh), registry)
    except (OSError, yaml.YAMLError) as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    except TopologyError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(topology, indent=2))
    else:
        for hid, host in topology["hosts"].items():
            print(f"{hid:30} {host['address']:15} {', '.join(host['roles'])}")
    return 0


sys.exit(main())

#!/usr/bin/python3
"""Salt's side of Patroni's dynamic (cluster-wide) configuration.

    dynamic_config.py check CONFIG WANTED [--wait SECONDS]
        exit 0 when every key WANTED names has that value in the cluster's
        dynamic configuration; 1 otherwise (the differences on stderr)
    dynamic_config.py apply CONFIG WANTED [--wait SECONDS]
        send WANTED to this member's REST API (PATCH /config: the keys it
        names change, every other key stays), then check again

CONFIG is the member's Patroni configuration (REST API address and
credentials), WANTED a YAML mapping. Keys WANTED does not name (a pause,
anything set with patronictl edit-config) are left alone. Both wait up to
SECONDS for the REST API to show a configuration (a new cluster is still
bootstrapping). Written by the patroni Salt formula; stdlib and PyYAML only
(Patroni's own dependencies).
"""
import argparse
import base64
import json
import sys
import time
import urllib.error
import urllib.request

import yaml


def rest_api(config):
    restapi = config["restapi"]
    url = f"http://{restapi['connect_address']}/config"
    auth = restapi.get("authentication") or {}
    headers = {"Content-Type": "application/json"}
    if auth.get("username"):
        token = base64.b64encode(f"{auth['username']}:{auth.get('password') or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return url, headers


def current(url, wait):
    """The cluster's dynamic configuration, or None after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                data = json.load(response)
                if isinstance(data, dict) and data:
                    return data
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(2)


def normal(value):
    """PostgreSQL-style equality: on/true/yes are one value, 10 and '10' too."""
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip().lower()
    return {"true": "on", "yes": "on", "false": "off", "no": "off"}.get(text, text)


def differences(wanted, have, path=""):
    for key, value in wanted.items():
        where = f"{path}{key}"
        if isinstance(value, dict):
            inner = have.get(key) if isinstance(have, dict) else None
            if not isinstance(inner, dict):
                yield f"{where}: missing"
                continue
            if key == "parameters":  # PostgreSQL names are case-insensitive
                inner = {str(k).lower(): v for k, v in inner.items()}
                value = {str(k).lower(): v for k, v in value.items()}
            yield from differences(value, inner, f"{where}:")
        elif not isinstance(have, dict) or key not in have:
            yield f"{where}: missing (want {value!r})"
        elif normal(have[key]) != normal(value):
            yield f"{where}: {have[key]!r} (want {value!r})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("verb", choices=["check", "apply"])
    parser.add_argument("config")
    parser.add_argument("wanted")
    parser.add_argument("--wait", type=float, default=120)
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as fh:
        url, headers = rest_api(yaml.safe_load(fh))
    with open(args.wanted, encoding="utf-8") as fh:
        wanted = yaml.safe_load(fh) or {}

    have = current(url, args.wait)
    if have is None:
        print(f"no dynamic configuration from {url} after {args.wait:.0f} s "
              "(is Patroni running, and has the cluster a leader?)", file=sys.stderr)
        return 1
    diff = list(differences(wanted, have))
    if args.verb == "check" or not diff:
        for line in diff:
            print(line, file=sys.stderr)
        return 1 if diff else 0

    request = urllib.request.Request(url, data=json.dumps(wanted).encode(), headers=headers, method="PATCH")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            have = json.load(response)
    except urllib.error.HTTPError as exc:
        print(f"PATCH {url}: {exc.code} {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    left = list(differences(wanted, have))
    for line in diff:
        print(f"changed {line}")
    for line in left:
        print(f"still different after PATCH: {line}", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())

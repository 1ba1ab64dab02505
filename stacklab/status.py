"""What is up: every lab container with its address, roles, systemd state and URL."""

from __future__ import annotations

from . import docker
from .containers import LABEL, parallel

KIND_ORDER = {"master": 0, "aptproxy": 1, "acme": 2, "host": 3, "outsider": 4}


def layout_status(layout: str | None) -> dict:
    """{'layout', 'up', 'url', 'containers': [{name, layout, release, kind,
    host, address, roles, state, systemd, url}]} for one layout (None: all)."""
    labels = [LABEL] + ([f"stacklab.layout={layout}"] if layout else [])
    infos = docker.inspect(*docker.ids("container", labels))

    def row(c):
        lab = c["Config"]["Labels"]
        name = c["Name"].lstrip("/")
        running = c["State"]["Running"]
        kind = lab.get("stacklab.kind")
        sysd = ""
        if running and kind in ("host", "master", "outsider"):
            r = docker.docker("exec", name, "systemctl", "is-system-running", check=False, timeout=30)
            sysd = r.stdout.decode(errors="replace").strip()
        return {
            "name": name, "layout": lab.get("stacklab.layout"), "release": lab.get("stacklab.release", ""),
            "kind": kind,
            "host": lab.get("stacklab.host") or ("salt" if kind == "master" else kind),
            "address": lab.get("stacklab.address", ""), "roles": lab.get("stacklab.roles", ""),
            "state": c["State"]["Status"], "systemd": sysd, "url": lab.get("stacklab.url", ""),
        }
    rows = sorted(parallel(row, infos) if infos else [],
                  key=lambda r: (r["layout"] or "", KIND_ORDER.get(r["kind"], 9), r["address"]))
    urls = [r["url"] for r in rows if r["url"]]
    return {"layout": layout, "up": bool(rows), "url": urls[0] if urls else None, "containers": rows,
            "database_clusters": {r["layout"]: view for r in rows if (view := database_cluster(r))}}


def database_cluster(row: dict) -> str:
    """A running database host's view of its Patroni cluster (members,
    roles, state, timeline, lag): the patroni formula's patroni-cluster."""
    if row["state"] != "running" or "database" not in row["roles"].split(","):
        return ""
    r = docker.docker("exec", row["name"], "sh", "-c",
                      "test -x /usr/local/sbin/patroni-cluster && /usr/local/sbin/patroni-cluster list",
                      check=False, timeout=30)
    return r.stdout.decode(errors="replace").rstrip() if r.returncode == 0 else ""


def format_status(st: dict) -> str:
    if not st["containers"]:
        return f"lab {st['layout']}: down" if st["layout"] else "no lab is up"
    lines = []
    for layout in sorted({r["layout"] for r in st["containers"]}):
        rows = [r for r in st["containers"] if r["layout"] == layout]
        releases = sorted({r["release"] for r in rows if r["release"]})
        w = max(10, *(len(r["host"]) for r in rows))
        lines.append(f"lab {layout} ({'/'.join(releases) or '?'}): {len(rows)} containers "
                     f"on network stacklab-{layout}")
        lines.append(f"  {'HOST':{w}} {'ADDRESS':13} {'ROLES':36} {'STATE':8} {'SYSTEMD':9} CONTAINER")
        for r in rows:
            roles = r["roles"] or {"master": "salt-master", "aptproxy": "apt cache", "acme": "ACME server (pebble)",
                                   "outsider": "(not in the topology)"}.get(r["kind"], "-")
            lines.append(f"  {r['host']:{w}} {r['address']:13} {roles:36} {r['state']:8} "
                         f"{r['systemd'] or '-':9} {r['name']}")
        for r in rows:
            if r["url"]:
                lines.append(f"  site ({r['host']}): {r['url']}")
        view = st.get("database_clusters", {}).get(layout)
        if view:
            lines.append("  database cluster (patroni-cluster list):")
            lines += ["    " + line for line in view.splitlines()]
    return "\n".join(lines)

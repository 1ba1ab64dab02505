"""The stack's operations views, run on the salt-master against real hosts:

    salt-run stack.plan   [saltenv=stack] [pillarenv=stack] [test=False] [data=True]
    salt-run stack.status [saltenv=stack] [pillarenv=stack] [data=True]

plan: from the site data alone (the library the pillar uses, read from the
pillar roots as the ordered deploy reads it) each host's roles, address,
services, who reaches it and the peers it talks to; then what a
`state.apply test=True` would change on each host (nothing is changed).

status: one table of the site's health, asked of the hosts through Salt:
the load balancers' upstreams (probed from each load balancer with the
request its nginx sends), uWSGI vassals (stats sockets: busy and idle
workers), database members (leader, replicas, lag), memcached (hit ratio,
memory), disk use of the database, media and backup hosts, the last
backup (pgbackrest info).

Both print a table; data=True returns the data instead (for --out=json).
The master finds this file through runner_dirs (README, "Deploying to real
servers"), or `salt-run saltutil.sync_runners saltenv=stack`.

The functions below the two entry points read canned Salt returns and
format rows: they need no master (tests/fast/test_operations.py)."""
import datetime
import importlib
import json
import os
import re
import sys

import yaml

STACK_ENV = "stack"
# Debian's PostgreSQL keeps every cluster under this directory.
POSTGRES_DATA_ROOT = "/var/lib/postgresql"
# patronictl for the host's cluster (formulas/patroni/map.jinja, cluster_command).
PATRONI_CLUSTER = "/usr/local/sbin/patroni-cluster"
STATUS_COLUMNS = ("TIER", "HOST", "WHAT", "STATE", "DETAIL")
# Asked of every member, plain or Patroni: one JSON document (the leader lists its replicas).
DATABASE_QUERY = """SELECT json_build_object(
  'in_recovery', pg_is_in_recovery(),
  'replicas', (SELECT coalesce(json_agg(json_build_object(
      'address', host(client_addr), 'state', state, 'sync', sync_state,
      'lag_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn),
      'replay_lag_seconds', extract(epoch FROM replay_lag))), '[]'::json)
    FROM pg_stat_replication))"""


# --- entry points (need a master) -------------------------------------------------------------

def plan(saltenv=STACK_ENV, pillarenv=None, test=True, data=False):
    """The site's plan, and what a state.apply test=True would change per host."""
    pillarenv = pillarenv or saltenv
    view = _site_view(pillarenv)
    lib, topology, apps, registry = view["lib"], view["topology"], view["apps"], view["registry"]
    hosts = list(topology["hosts"])
    releases = _call(hosts, "grains.item", ["osmajorrelease"])
    facts = host_facts(releases, _formula_file(saltenv, "postgres", "osmajorreleasemap.yaml"))
    result = {"hosts": lib.site_plan(topology, apps, registry, facts), "changes": None}
    if test:
        # test=True: every state reports what it would do; nothing changes.
        applied = _call(hosts, "state.apply", kwarg={"test": True, "saltenv": saltenv, "pillarenv": pillarenv})
        result["changes"] = {h: would_change(applied.get(h)) for h in hosts}
    if data:
        return result
    return format_plan_report(lib.format_plan(result["hosts"]), result["changes"], saltenv, pillarenv, lib.plan.table)


def status(saltenv=STACK_ENV, pillarenv=None, data=False):
    """One table of the site's health, asked of every host through Salt."""
    pillarenv = pillarenv or saltenv
    view = _site_view(pillarenv)
    returns = collect(view, saltenv)
    rows = status_rows(view_summary(view), returns, datetime.datetime.now(datetime.timezone.utc))
    return rows if data else format_status(rows, view["lib"].plan.table)


def _site_view(pillarenv):
    """The site (topology, apps) checked by the library the pillar uses,
    from the pillar roots of ``pillarenv`` (the site's own root first)."""
    roots = __opts__["pillar_roots"].get(pillarenv) or []  # noqa: F821
    sys.modules.pop("stackpillar", None)
    sys.path[:0] = roots
    try:
        lib = importlib.import_module("stackpillar")
    finally:
        del sys.path[:len(roots)]
    site = lib.load_site(roots)
    registry = lib.load_registry()
    topology, apps = lib.build.checked_site(site, registry)
    return {"lib": lib, "site": site, "registry": registry, "topology": topology, "apps": apps}


def _call(hosts, fun, arg=(), kwarg=None, timeout=None):
    """``fun`` on ``hosts`` (a list of minion ids) -> {minion: return};
    a minion that did not answer is missing."""
    import salt.client  # on the master only

    client = salt.client.get_local_client(__opts__["conf_file"])  # noqa: F821
    return client.cmd(list(hosts), fun, arg=list(arg), tgt_type="list", kwarg=kwarg or {},
                      timeout=timeout or __opts__.get("timeout", 30))  # noqa: F821


def _formula_file(saltenv, formula, name):
    """A formula's YAML file (its defaults, its release map) from the first
    file root of ``saltenv`` holding it."""
    for root in __opts__["file_roots"].get(saltenv) or []:  # noqa: F821
        path = os.path.join(root, formula, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                return yaml.safe_load(fh)
    raise FileNotFoundError(f"no {formula}/{name} in the file roots of {saltenv}")


def collect(view, saltenv):
    """Every host's raw answers, by kind: what status_rows reads."""
    lib, topology, apps = view["lib"], view["topology"], view["apps"]
    registry = lib.resolve_registry(view["registry"], topology)
    holders = {role: lib.hosts_with(topology, role) for role in registry["roles"]}
    everyone = list(topology["hosts"])
    # The stackstatus probes (formulas/_modules) on every host, as of this checkout.
    _call(everyone, "saltutil.sync_modules", kwarg={"saltenv": saltenv})
    returns = {"answered": set(_call(everyone, "test.ping"))}
    if holders["loadbalancer"]:
        # The app's health view, as the vassals' reload check asks it.
        health_path = _formula_file(saltenv, "django", "defaults.yaml")["django"]["app_defaults"]["health_path"]
        targets = upstream_targets(lib.build_pillar(holders["loadbalancer"][0], view["site"], view["registry"]),
                                   health_path)
        returns["upstreams"] = _call(holders["loadbalancer"], "stackstatus.probe_upstreams", [targets])
    uwsgi = _formula_file(saltenv, "uwsgi", "defaults.yaml")["uwsgi"]
    returns["uwsgi"] = _call(holders["app"], "stackstatus.uwsgi_stats", [sorted(apps), uwsgi["stats_dir"]])
    returns["database"] = {h: _call([h], "cmd.run_all", [database_command(lib.topology.role_port(
        topology, registry, h, "database", "postgres"))], {"runas": "postgres", "python_shell": False}).get(h)
        for h in holders["database"]}
    if holders["dcs"]:
        returns["patroni"] = _call(holders["database"], "cmd.run_all", [[PATRONI_CLUSTER, "list", "-f", "json"]],
                                   {"python_shell": False})
    returns["memcached"] = {h: _call([h], "stackstatus.memcached_stats", [
        topology["hosts"][h]["address"], lib.topology.role_port(topology, registry, h, "cache", "memcached")]).get(h)
        for h in holders["cache"]}
    paths = disk_paths(topology, _formula_file(saltenv, "nginx", "defaults.yaml")["nginx"]["media"]["root"],
                       _formula_file(saltenv, "pgbackrest", "defaults.yaml")["pgbackrest"]["repo_path"],
                       _formula_file(saltenv, "media_backup", "defaults.yaml")["media_backup"]["snapshot_root"])
    returns["disk_paths"] = paths
    returns["disk"] = {h: _call([h], "status.diskusage", list(p)).get(h) for h, p in paths.items()}
    returns["backup"] = _call(holders["backup"], "cmd.run_all", [[
        "pgbackrest", f"--stanza={lib.adapters.BACKUP_STANZA}", "--output=json", "info"]],
        {"runas": "postgres", "python_shell": False}) if holders["backup"] else {}
    return returns


# --- what the entry points read and print (no master needed) ----------------------------------

def host_facts(releases, postgres_releases):
    """{host: {'postgres_version': ...}} from each host's grains
    osmajorrelease and the postgres formula's release map (the registry's
    expected services name the version)."""
    facts = {}
    for host, grains in (releases or {}).items():
        release = (grains or {}).get("osmajorrelease") if isinstance(grains, dict) else None
        version = (postgres_releases.get(release) or postgres_releases.get(str(release)) or {}).get("version")
        if version is not None:
            facts[host] = {"postgres_version": str(version)}
    return facts


# What service.dead says in test mode of a unit the host does not have
# (a retired role's service): result None, yet nothing would change.
ABSENT_SERVICE = re.compile(r"^Service \S+ not present; if created in this state run, it would have been stopped")


def _absent_service(state):
    return not state.get("changes") and bool(ABSENT_SERVICE.match(str(state.get("comment", ""))))


def would_change(states):
    """One host's state.apply test=True return: {'states': count, 'changes':
    [state ids that would change, run order], 'failed': [id: comment],
    'error': text} (error: no answer, or a render error)."""
    if states is None:
        return {"states": 0, "changes": [], "failed": [], "error": "no answer"}
    if not isinstance(states, dict):
        text = "; ".join(map(str, states)) if isinstance(states, list) else str(states)
        return {"states": 0, "changes": [], "failed": [], "error": text.strip()}
    runs = sorted((s for s in states.values() if isinstance(s, dict)), key=lambda s: s.get("__run_num__", 0))
    return {
        "states": len(runs),
        # test=True: a state that would change returns result None (or its changes).
        "changes": [s.get("__id__", "?") for s in runs
                    if (s.get("result") is None and not _absent_service(s)) or s.get("changes")],
        "failed": [f"{s.get('__id__', '?')}: {str(s.get('comment', '')).strip()}" for s in runs
                   if s.get("result") is False],
        "error": None,
    }


def format_plan_report(plan_table, changes, saltenv, pillarenv, table):
    lines = [plan_table]
    if changes is None:
        return plan_table
    lines += ["", f"What would change (state.apply test=True saltenv={saltenv} pillarenv={pillarenv}):"]
    rows = []
    for host, found in changes.items():
        if found["error"]:
            rows.append((host, "-", "-", "-", found["error"][:200]))
            continue
        rows.append((host, str(found["states"]), str(len(found["changes"])), str(len(found["failed"])),
                     ", ".join(found["changes"]) or "nothing"))
    lines.append(table(("HOST", "STATES", "WOULD CHANGE", "FAILED", "STATE IDS"), rows))
    lines += [f"  ! {host}: {failure}" for host, found in changes.items() for failure in found["failed"]]
    return "\n".join(lines)


def upstream_targets(lb_pillar, health_path):
    """What each load balancer's nginx sends its upstreams, from its pillar
    (nginx:loadbalancer:sites): the health view over uwsgi to every app
    host, and an HTTP GET of / to every media host (any answer but a 5xx
    is up), per site."""
    targets = []
    for app, site in sorted(lb_pillar["nginx"]["loadbalancer"]["sites"].items()):
        common = {"site": app, "host": site["server_names"][0], "scheme": "https" if site.get("tls") else "http"}
        targets += [{**common, "kind": "app", "server": s, "protocol": "uwsgi", "path": health_path}
                    for s in site["app_upstreams"]]
        targets += [{**common, "kind": "media", "server": s, "protocol": "http", "path": "/"}
                    for s in site["media_upstreams"]]
    return targets


def database_command(port):
    return ["psql", "-p", str(port), "-d", "postgres", "-AtX", "-c", DATABASE_QUERY]


def disk_paths(topology, media_root, backup_repository, media_snapshots):
    """{host: [paths]} whose disk use the status shows: the database's data,
    the uploads, the backups."""
    by_role = {"database": [POSTGRES_DATA_ROOT], "media": [media_root], "backup": [backup_repository, media_snapshots]}
    paths = {}
    for host, spec in topology["hosts"].items():
        wanted = [p for role in spec["roles"] for p in by_role.get(role, [])]
        if wanted:
            paths[host] = list(dict.fromkeys(wanted))
    return paths


def view_summary(view):
    """What status_rows needs of the site: hosts by role, addresses, apps."""
    topology, lib = view["topology"], view["lib"]
    return {"hosts_by_role": {r: lib.hosts_with(topology, r) for r in view["registry"]["roles"]},
            "addresses": {h: s["address"] for h, s in topology["hosts"].items()},
            "apps": sorted(view["apps"])}


def status_rows(summary, returns, now):
    """[{tier, host, what, state, detail}] from the hosts' raw answers."""
    rows = []
    answered = returns.get("answered")
    for host in dict.fromkeys(h for hosts in summary["hosts_by_role"].values() for h in hosts):
        if answered is not None and host not in answered:
            rows.append(_row("salt", host, "minion", "down", "no answer to test.ping"))
    rows += upstream_rows(summary, returns.get("upstreams") or {})
    rows += uwsgi_rows(summary, returns.get("uwsgi") or {})
    rows += database_rows(summary, returns.get("database") or {}, returns.get("patroni"))
    rows += memcached_rows(summary, returns.get("memcached") or {})
    rows += disk_rows(returns.get("disk_paths") or {}, returns.get("disk") or {})
    rows += backup_rows(summary, returns.get("backup") or {}, now)
    return rows


def _row(tier, host, what, state, detail=""):
    return {"tier": tier, "host": host, "what": what, "state": state, "detail": detail}


def upstream_rows(summary, returns):
    names = {a: h for h, a in summary["addresses"].items()}
    rows = []
    for lb in summary["hosts_by_role"].get("loadbalancer", []):
        probes = returns.get(lb)
        if not isinstance(probes, list):
            rows.append(_row("loadbalancer", lb, "upstreams", "unknown", _text(probes)))
            continue
        for probe in probes:
            peer = names.get(probe["server"].rsplit(":", 1)[0], probe["server"])
            what = f"{probe['site']} {probe['kind']} {peer} ({probe['server']})"
            if "error" in probe:
                state, detail = "down", f"{probe['error']} ({probe['protocol']} {probe['path']})"
            else:
                healthy = probe["status"] == 200 if probe["kind"] == "app" else probe["status"] < 500
                state = "up" if healthy else "failing"
                detail = f"{probe['status']} to {probe['protocol']} GET {probe['path']} in {probe['seconds'] * 1000:.0f} ms"
            rows.append(_row("loadbalancer", lb, what, state, detail))
    return rows


def uwsgi_rows(summary, returns):
    rows = []
    for host in summary["hosts_by_role"].get("app", []):
        vassals = returns.get(host)
        if not isinstance(vassals, dict):
            rows.append(_row("app", host, "uwsgi", "unknown", _text(vassals)))
            continue
        for vassal in sorted(set(summary["apps"]) | set(vassals)):
            got = vassals.get(vassal) or {"error": "not reported"}
            workers = uwsgi_workers(got)
            if workers is None:
                rows.append(_row("app", host, f"uwsgi {vassal}", "down", "0 workers: " + got.get("error", "")))
            else:
                rows.append(_row("app", host, f"uwsgi {vassal}", "up" if workers["workers"] else "down",
                                 f"{workers['workers']} workers: {workers['busy']} busy, {workers['idle']} idle; "
                                 f"{workers['requests']} requests; listen queue {workers['listen_queue']}"))
    return rows


def uwsgi_workers(answer):
    """{workers, busy, idle, requests, listen_queue} from a vassal's stats
    answer (uWSGI's stats JSON), or None when it gave none."""
    if not isinstance(answer, dict) or "stats" not in answer:
        return None
    try:
        stats = json.loads(answer["stats"])
    except ValueError:
        return None
    workers = stats.get("workers") or []
    busy = sum(1 for w in workers if _busy(w))
    # Neither busy nor idle: cheap (not spawned yet), paused, or being reloaded.
    idle = sum(1 for w in workers if not _busy(w) and w.get("status") == "idle")
    return {"workers": len(workers), "busy": busy, "idle": idle,
            "requests": sum(w.get("requests", 0) for w in workers), "listen_queue": stats.get("listen_queue", 0)}


def _busy(worker):
    """A worker is busy while any of its threads (cores) is in a request."""
    return worker.get("status") == "busy" or any(c.get("in_request") for c in worker.get("cores") or [])


def database_rows(summary, returns, patroni=None):
    """A row per database member (leader or replica, its replication lag as
    the leader sees it) and the Patroni view when there is one."""
    members = summary["hosts_by_role"].get("database", [])
    names = {a: h for h, a in summary["addresses"].items()}
    seen = {}
    for host in members:
        seen[host] = _database_answer(returns.get(host))
    leaders = [h for h, s in seen.items() if isinstance(s, dict) and not s["in_recovery"]]
    streaming = {names.get(r["address"], r["address"]): r for h in leaders for r in seen[h]["replicas"]}
    states = patroni_states(patroni)
    rows = []
    for host in members:
        answer = seen[host]
        extra = f"; patroni: {states[host]}" if host in states else ""
        if not isinstance(answer, dict):
            rows.append(_row("database", host, "postgres", "down", answer + extra))
        elif not answer["in_recovery"]:
            rows.append(_row("database", host, "postgres leader", "up",
                             f"{len(answer['replicas'])} replicas streaming" + extra))
        elif host in streaming:
            replica = streaming[host]
            lag = replica.get("replay_lag_seconds")
            rows.append(_row("database", host, "postgres replica", "up",
                             f"{replica['state']} ({replica['sync']}), lag {_bytes(replica.get('lag_bytes') or 0)}"
                             + (f", {lag:.1f} s" if lag is not None else "") + extra))
        else:
            rows.append(_row("database", host, "postgres replica", "failing",
                             "in recovery, not streaming from a leader" + extra))
    if members and not leaders:
        rows.append(_row("database", ", ".join(members), "leader", "down", "no member accepts writes"))
    return rows


def _database_answer(answer):
    """The member's JSON document, or a sentence saying why there is none."""
    if not isinstance(answer, dict):
        return _text(answer)
    if answer.get("retcode") != 0:
        return (answer.get("stderr") or answer.get("stdout") or f"psql exited {answer.get('retcode')}").strip()[:200]
    try:
        return json.loads(answer["stdout"])
    except ValueError:
        return f"psql said: {answer['stdout'][:200]}"


def patroni_states(returns):
    """{member: 'Role state, TL n'} from the first `patroni-cluster list -f
    json` that answered (Patroni's own view of every member)."""
    for answer in (returns or {}).values():
        if isinstance(answer, dict) and answer.get("retcode") == 0:
            try:
                members = json.loads(answer["stdout"])
            except ValueError:
                continue
            return {m["Member"]: f"{m.get('Role', '?')} {m.get('State', '?')}, TL {m.get('TL', '?')}"
                    for m in members if "Member" in m}
    return {}


def memcached_rows(summary, returns):
    rows = []
    for host in summary["hosts_by_role"].get("cache", []):
        stats = returns.get(host)
        if not isinstance(stats, dict) or "error" in stats or "get_hits" not in stats:
            rows.append(_row("cache", host, "memcached", "down", _text(stats.get("error") if isinstance(
                stats, dict) else stats)))
            continue
        hits, misses = int(stats["get_hits"]), int(stats["get_misses"])
        ratio = f"{100 * hits / (hits + misses):.1f} %" if hits + misses else "no gets yet"
        rows.append(_row("cache", host, "memcached", "up",
                         f"hit ratio {ratio} ({hits} hits, {misses} misses); memory {_bytes(int(stats['bytes']))} "
                         f"of {_bytes(int(stats['limit_maxbytes']))}; {stats.get('curr_connections', '?')} "
                         "connections"))
    return rows


def disk_rows(paths, returns, warn_at=0.85):
    """A row per path asked of each host (status.diskusage leaves out a path
    that does not exist)."""
    rows = []
    for host, wanted in paths.items():
        usage = returns.get(host)
        for path in wanted:
            figures = usage.get(path) if isinstance(usage, dict) else None
            if figures is None:
                why = "no such path" if isinstance(usage, dict) else _text(usage)
                rows.append(_row("disk", host, path, "unknown", why))
                continue
            total, available = figures["total"], figures["available"]
            used = 1 - available / total if total else 0
            rows.append(_row("disk", host, path, "warn" if used >= warn_at else "ok",
                             f"{100 * used:.0f} % used, {_bytes(available)} free of {_bytes(total)}"))
    return rows


def backup_rows(summary, returns, now):
    rows = []
    for host in summary["hosts_by_role"].get("backup", []):
        answer = returns.get(host)
        last = last_backup(answer)
        if isinstance(last, str):
            rows.append(_row("backup", host, "last backup", "none", last))
            continue
        ended = datetime.datetime.fromtimestamp(last["stop"], datetime.timezone.utc)
        age = now - ended
        rows.append(_row("backup", host, "last backup", "ok" if not last["error"] else "failing",
                         f"{last['type']} {last['label']}, ended {ended:%Y-%m-%d %H:%M} UTC "
                         f"({_age(age)} ago), {_bytes(last['size'])}; WAL archived up to {last['wal'] or '-'}"))
    return rows


def last_backup(answer):
    """The newest backup in `pgbackrest info --output=json`: {label, type,
    stop (epoch seconds), size, error, wal (the archive's last segment)},
    or a sentence saying why there is none."""
    if not isinstance(answer, dict):
        return _text(answer)
    if answer.get("retcode") != 0:
        return (answer.get("stderr") or answer.get("stdout") or "pgbackrest failed").strip()[:200]
    try:
        stanzas = json.loads(answer["stdout"])
    except ValueError:
        return f"pgbackrest said: {answer['stdout'][:200]}"
    backups = [b for stanza in stanzas for b in stanza.get("backup") or []]
    if not backups:
        messages = "; ".join(s.get("status", {}).get("message", "") for s in stanzas)
        return f"no backup yet ({messages or 'no stanza'})"
    newest = max(backups, key=lambda b: b["timestamp"]["stop"])
    archives = [a for stanza in stanzas for a in stanza.get("archive") or []]
    return {"label": newest["label"], "type": newest["type"], "stop": newest["timestamp"]["stop"],
            "size": (newest.get("info") or {}).get("size", 0), "error": bool(newest.get("error")),
            "wal": max((a.get("max") or "" for a in archives), default="")}


def format_status(rows, table):
    """``table``: the plan's text table (stackpillar.plan.table)."""
    return table(STATUS_COLUMNS, [(r["tier"], r["host"], r["what"], r["state"], r["detail"]) for r in rows])


def _text(value):
    if value is None:
        return "no answer"
    return str(value).strip()[:200]


def _bytes(count):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count}"


def _age(delta):
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"

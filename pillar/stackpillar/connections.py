"""PostgreSQL's max_connections against the app workers that hold
connections: every uWSGI thread of every app on every app host keeps one
(djangostack.settings: CONN_MAX_AGE), two when it also reads from replicas
(a second alias, which reaches the leader when no standby answers).

The figures come from the pillar alone: processes and threads are topology
options with the registry's explicit defaults (never uWSGI's per-CPU figure,
a grain the pillar cannot see), so this check sees what the hosts will run.
"""
from .errors import TopologyError
from .topology import hosts_with, role_option

# Kept beside the app workers' connections:
#   3  PostgreSQL's superuser_reserved_connections, counted inside
#      max_connections and closed to the apps: Patroni, Salt's user and
#      database states, pgBackRest's backups, an operator's psql;
#   17 for the rest that connects as an app's user: the leader's migrate
#      and other manage.py commands, a shell, the status view, a host
#      that joins by booting before the next deploy counts it.
# Streaming replicas are not counted here: walsenders have their own pool
# (max_wal_senders) since PostgreSQL 12.
MAINTENANCE_HEADROOM = 20
# PostgreSQL's own default: the derived value is never below it.
POSTGRES_DEFAULT = 100
MAX_CONNECTIONS_KEY = "topology:hosts:{host}:options:database:max_connections"


def connections_per_thread(topology, spec):
    """2 with several database hosts and read replicas on (default and
    replica aliases), else 1."""
    several = len(hosts_with(topology, "database")) > 1
    replicas = (spec.get("environment") or {}).get("DJANGO_DB_READ_REPLICAS", True)
    return 2 if several and not _off(replicas) else 1


def app_connections(topology, apps, registry):
    """[(host, app, processes, threads, per thread, connections)] for every
    app on every app host, topology order."""
    rows = []
    for host in hosts_with(topology, "app"):
        processes = role_option(topology, registry, host, "app", "processes")
        threads = role_option(topology, registry, host, "app", "threads")
        for name, spec in apps.items():
            per_thread = connections_per_thread(topology, spec)
            rows.append((host, name, processes, threads, per_thread, processes * threads * per_thread))
    return rows


def needed_connections(topology, apps, registry):
    return sum(row[-1] for row in app_connections(topology, apps, registry)) + MAINTENANCE_HEADROOM


def max_connections(topology, apps, registry):
    """The database's max_connections (the same on every member): the given
    one, checked, or PostgreSQL's default raised to what the workers need.
    A given value below the need is refused, naming the numbers to change."""
    databases = hosts_with(topology, "database")
    needed = needed_connections(topology, apps, registry)
    for host in databases:
        given = topology["hosts"][host]["options"].get("database", {}).get("max_connections")
        if given is not None and given < needed:
            raise TopologyError(MAX_CONNECTIONS_KEY.format(host=host), _too_few(topology, apps, registry,
                                                                               given, needed))
    given = [topology["hosts"][h]["options"].get("database", {}).get("max_connections") for h in databases]
    return next((g for g in given if g is not None), max(POSTGRES_DEFAULT, needed))


def _too_few(topology, apps, registry, given, needed):
    rows = app_connections(topology, apps, registry)
    parts = [f"{host} {name}: {processes} processes x {threads} threads"
             + (f" x {per_thread} (default and replica)" if per_thread > 1 else "") + f" = {total}"
             for host, name, processes, threads, per_thread, total in rows]
    app_hosts = list(dict.fromkeys(row[0] for row in rows))
    return (f"{given} is below the {needed} connections the app workers may hold ({'; '.join(parts)}) plus "
            f"{MAINTENANCE_HEADROOM} kept for maintenance; raise it to at least {needed}, or lower "
            f"topology:hosts:<host>:options:app:processes or threads on {', '.join(app_hosts)}")


def _off(value):
    return value is False or str(value).strip().lower() in ("0", "false", "no", "off")

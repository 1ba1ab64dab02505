"""One adapter per role: the role's formula pillar for one host, as data.

An adapter is a function named after its role, taking a Context and
returning a dict merged into the host's pillar. It reads only the topology,
the apps, the registry's ports and the secrets its formula needs, so a
secret reaches only the hosts whose roles use it. What is derived from a
secret (TLS keys, the media write credential's hash) carries only what the
host needs, never the secret.
"""
from . import site
from .connections import max_connections
from .media_auth import password_hash, write_token
from .timeouts import app_timeouts
from .tls import host_credentials
from .topology import hosts_with, role_option, role_port

# pgBackRest's stanza: the database cluster's name in the repository, and in
# PostgreSQL's archive_command.
BACKUP_STANZA = "main"


class Context:
    """What an adapter may know about one host and the site."""

    def __init__(self, host_id, topology, apps, secrets, registry):
        self.id = host_id
        self.topology, self.apps, self.registry = topology, apps, registry
        self._secrets = secrets
        self.host = topology["hosts"][host_id]
        self.address = self.host["address"]
        self.roles = self.host["roles"]

    def options(self, role):
        return dict(self.host["options"].get(role, {}))

    def option(self, role, name):
        """This host's option, or the registry's default for it."""
        return role_option(self.topology, self.registry, self.id, role, name)

    def holders(self, role):
        return hosts_with(self.topology, role)

    def leader(self, role):
        """The role's first host in topology order (runs once-per-deploy steps)."""
        holders = self.holders(role)
        return holders[0] if holders else None

    def address_of(self, host_id):
        return self.topology["hosts"][host_id]["address"]

    def port(self, role, name, host_id=None):
        return role_port(self.topology, self.registry, host_id or self.id, role, name)

    def endpoints(self, role, name, prefix="", suffix=""):
        """prefix + address:port + suffix for every holder of ``role``."""
        return [f"{prefix}{self.address_of(h)}:{self.port(role, name, h)}{suffix}"
                for h in self.holders(role)]

    def secret(self, path):
        return site.secret(self._secrets, path, self.id)

    def media_write_token(self, app):
        """The app's credential for the media hosts' WebDAV (user: the app's
        name), derived from its secret key (media_auth)."""
        return write_token(self.secret(f"django:{app}:secret_key"), app)

    def backup_tls(self):
        """This host's key and certificates for pgBackRest's TLS server."""
        return host_credentials(self.secret("pgbackrest:tls_seed"), "pgbackrest", self.id, self.address)


def database(ctx):
    options = ctx.options("database")
    options.pop("port", None)
    app_addresses = [ctx.address_of(h) for h in ctx.holders("app")]
    postgres = {
        "listen_addresses": [ctx.address],
        "port": ctx.port("database", "postgres"),
        "shared_host": len(ctx.roles) > 1,
        "hba": [{"database": app["database"]["name"], "user": app["database"]["user"],
                 "address": f"{address}/32"}
                for app in ctx.apps.values() for address in app_addresses],
        "users": {app["database"]["user"]: {"password": ctx.secret(f"postgres:users:{app['database']['user']}")}
                  for app in ctx.apps.values()},
        "databases": {app["database"]["name"]: {"owner": app["database"]["user"]}
                      for app in ctx.apps.values()},
        # Archiving is always on, so adding a backup host is a reload, not
        # a restart; without one a segment counts as archived once written.
        "settings": {"archive_mode": "on", "archive_command": "/bin/true"},
        # Given, or derived from every app worker (connections.py).
        "max_connections": max_connections(ctx.topology, ctx.apps, ctx.registry),
        **options,
    }
    pillar = {"postgres": postgres}
    repository = ctx.leader("backup")
    if repository:
        postgres["settings"]["archive_command"] = f"pgbackrest --stanza={BACKUP_STANZA} archive-push %p"
        pillar["pgbackrest"] = {
            "stanza": BACKUP_STANZA,
            "tls": ctx.backup_tls(),
            "repository": {"address": None if repository == ctx.id else ctx.address_of(repository),
                           "port": ctx.port("backup", "pgbackrest", repository)},
        }
        if repository != ctx.id:
            pillar["pgbackrest"]["server"] = {"address": ctx.address, "port": ctx.port("database", "pgbackrest"),
                                              "clients": [repository]}
    if not ctx.holders("dcs"):
        return pillar
    # With dcs hosts every database host is a Patroni member: Patroni runs
    # the cluster the postgres pillar describes (postgres:patroni).
    postgres["patroni"] = True
    return {**pillar, "patroni": {
        "name": ctx.id,
        "address": ctx.address,
        "api_port": ctx.port("database", "patroni_api"),
        "etcd_hosts": ctx.endpoints("dcs", "etcd_client"),
        # The first member bootstraps (or takes over a single database's
        # data); the ordered deploy starts it alone first.
        "bootstrap_member": ctx.holders("database")[0],
        # Replication and pg_rewind are allowed from these addresses only.
        "members": {h: ctx.address_of(h) for h in ctx.holders("database")},
        "passwords": {
            "replication": ctx.secret("patroni:replication"),
            "rewind": ctx.secret("patroni:rewind"),
            "restapi": ctx.secret("patroni:restapi"),
        },
    }}


def cache(ctx):
    options = ctx.options("cache")
    options.pop("port", None)
    return {"memcached": {"listen": ctx.address, "port": ctx.port("cache", "memcached"), **options}}


def app(ctx):
    database_hosts = ctx.holders("database")
    if len(database_hosts) == 1:
        host, port = ctx.address_of(database_hosts[0]), ctx.port("database", "postgres", database_hosts[0])
    else:
        # Every member, in topology order: libpq tries them in turn and keeps
        # the one that accepts writes (djangostack.settings).
        host = [ctx.address_of(h) for h in database_hosts]
        port = [ctx.port("database", "postgres", h) for h in database_hosts]
    apps = {}
    for name, spec in ctx.apps.items():
        user = spec["database"]["user"]
        timeouts = app_timeouts(spec)
        apps[name] = {
            "source": spec["source"],
            "requirements": spec.get("requirements", "requirements.txt"),
            "settings_module": spec["settings_module"],
            "wsgi_module": spec["wsgi_module"],
            "server_names": spec["server_names"],
            # Secure cookies, HSTS and the https redirect behind TLS.
            "https": "tls" in spec,
            "hsts_seconds": spec.get("tls", {}).get("hsts_seconds"),
            "environment": spec.get("environment", {}),
            "secret_key": ctx.secret(f"django:{name}:secret_key"),
            "mail": app_mail(ctx, name, spec["mail"]),
            "database": {
                "host": host,
                "port": port,
                "name": spec["database"]["name"],
                "user": user,
                "password": ctx.secret(f"postgres:users:{user}"),
                "statement_timeout": timeouts["statement"],
            },
            "cache_servers": ctx.endpoints("cache", "memcached"),
            "media_write_urls": ctx.endpoints("media", "media_dav", "http://", f"/{name}/media/"),
            "static_publish_urls": ctx.endpoints("media", "media_dav", "http://", f"/{name}/static/"),
            "media_write_token": ctx.media_write_token(name),
            "leader": ctx.id == ctx.leader("app"),
            "uwsgi": {
                "socket": f"{ctx.address}:{spec['port']}",
                # Always given: the database's max_connections counts them.
                "processes": ctx.option("app", "processes"),
                "threads": ctx.option("app", "threads"),
                "harakiri": timeouts["harakiri"],
                "worker-reload-mercy": timeouts["reload_mercy"],
            },
        }
    return {"django": {"apps": apps}}


def app_mail(ctx, name, mail):
    """The app's relay as the django formula takes it (False: no mail), its
    password read here so it reaches app hosts only."""
    if not mail:
        return False
    password = ctx.secret(f"mail:{name}") if mail["user"] else None
    return {**mail, "password": password}


def media(ctx):
    # Other hosts only: a backup host that is this host reads the tree itself.
    peers = [h for h in ctx.holders("media") if h != ctx.id]
    backups = [ctx.address_of(h) for h in ctx.holders("backup") if h != ctx.id]
    return {"media_sync": {
        "address": ctx.address,
        "port": ctx.port("media", "media_sync"),
        "readers": list(dict.fromkeys([ctx.address_of(h) for h in peers] + backups)),
        "restorers": backups,
        "peers": [rsync_url(ctx, h) for h in peers],
    }, "nginx": {"media": {
        "listen": f"{ctx.address}:{ctx.port('media', 'media')}",
        "dav_listen": f"{ctx.address}:{ctx.port('media', 'media_dav')}",
        "dav_allow": [ctx.address_of(h) for h in ctx.holders("app")],
        # Writes need the app's credential as well: the hash only, never the
        # token or the secret key it comes from.
        "sites": {name: {"server_names": spec["server_names"],
                         "dav_password_hash": password_hash(ctx.media_write_token(name))}
                  for name, spec in ctx.apps.items()},
        **ctx.options("media"),
    }}}


def loadbalancer(ctx):
    app_hosts = ctx.holders("app")
    return {"nginx": {"loadbalancer": {
        "listen": ctx.port("loadbalancer", "http"),
        "listen_https": ctx.port("loadbalancer", "https"),
        # An ACME challenge token this host lacks is asked of the others
        # (whichever load balancer the ACME server reached).
        "acme_peers": [f"{ctx.address_of(h)}:{ctx.port('loadbalancer', 'http', h)}"
                       for h in ctx.holders("loadbalancer") if h != ctx.id],
        "sites": {name: {
            "server_names": spec["server_names"],
            "app_upstreams": [f"{ctx.address_of(h)}:{spec['port']}" for h in app_hosts],
            "media_upstreams": ctx.endpoints("media", "media"),
            "tls": site_tls(ctx, name, spec),
            # Longer than the app's harakiri; retries only early (timeouts.py).
            "app_read_timeout": f"{app_timeouts(spec)['lb_read']}s",
            "app_next_upstream_timeout": f"{app_timeouts(spec)['lb_retry_window']}s",
        } for name, spec in ctx.apps.items()},
        **ctx.options("loadbalancer"),
    }}}


def site_tls(ctx, name, spec):
    """An app's certificate as its load balancers get it (None: plain HTTP)."""
    tls = spec.get("tls")
    if tls is None:
        return None
    acme = tls["source"] == "acme"
    result = {**tls, "names": site.certificate_names(spec["server_names"]) if acme else spec["server_names"]}
    if tls["source"] == "pillar":
        result["certificate"] = ctx.secret(f"tls:{name}:certificate")
        result["key"] = ctx.secret(f"tls:{name}:key")
    return result


def dcs(ctx):
    peers = ctx.holders("dcs")
    return {"etcd": {
        "name": ctx.id,
        "address": ctx.address,
        "client_port": ctx.port("dcs", "etcd_client"),
        "peer_port": ctx.port("dcs", "etcd_peer"),
        # Read once, when the cluster forms (etcd ignores it afterwards).
        "initial_cluster": {h: f"http://{ctx.address_of(h)}:{ctx.port('dcs', 'etcd_peer', h)}" for h in peers},
        "cluster_token": f"django-stack-{ctx.topology['network']}",
    }}


def backup(ctx):
    options = ctx.options("backup")
    databases = ctx.holders("database")
    media = ctx.holders("media")
    remote = [h for h in databases if h != ctx.id]
    retention = {key: options[f"retention_{key}"] for key in ("full", "diff") if f"retention_{key}" in options}
    return {"pgbackrest": {
        "stanza": BACKUP_STANZA,
        "tls": ctx.backup_tls(),
        "server": {"address": ctx.address, "port": ctx.port("backup", "pgbackrest"), "clients": remote},
        "databases": [{"address": None if h == ctx.id else ctx.address_of(h),
                       "port": ctx.port("database", "pgbackrest", h),
                       "pg_port": ctx.port("database", "postgres", h)} for h in databases],
        **({"retention": retention} if retention else {}),
    }, "media_backup": {
        # A media host backs up its own tree; else the first media host's daemon.
        "source": None if ctx.id in media else rsync_url(ctx, media[0]),
        "restore_targets": ["local" if h == ctx.id else rsync_url(ctx, h) for h in media],
    }}


def rsync_url(ctx, host):
    """rsync://address:port of a media host's daemon (media_sync)."""
    return f"rsync://{ctx.address_of(host)}:{ctx.port('media', 'media_sync', host)}"

"""Checks shared by every layout's lab tests: real HTTP through the load
balancers, real SQL on the database host, testinfra on every host."""
from __future__ import annotations

import base64
import collections
import concurrent.futures
import dataclasses
import http.client
import ipaddress
import json
import re
import shlex
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest
import yaml

import stackpillar
from stackpillar.registry import resolve_registry
from stackpillar.firewall import SSH_PORT
from stackpillar.topology import role_port
from stacklab import site, webclient
from stacklab.webclient import SITE_HOST, Response
from tests.layouts import EXAMPLE_APPS, REGISTRY, REPO, hosts_with, load_layout, role_ports


def formula_defaults(formula):
    """A formula's defaults.yaml: the commands and paths it installs."""
    return site.formula_defaults(REPO, formula)


BACKUP_STANZA = stackpillar.adapters.BACKUP_STANZA
MEDIA_ROOT = formula_defaults("nginx")["media"]["root"]
STATIC_CACHE = formula_defaults("nginx")["loadbalancer"]["static_cache"]["path"]
PAGE_CACHE = formula_defaults("nginx")["loadbalancer"]["page_cache"]["path"]
MEDIA_PORT = role_ports("media")["media"][0]
MEDIA_DAV_PORT = role_ports("media")["media_dav"][0]
MEDIA_WRITERS = formula_defaults("nginx")["media"]["writers_dir"]
MEMCACHED_PORT = role_ports("cache")["memcached"][0]

APPS = yaml.safe_load(EXAMPLE_APPS.read_text())["apps"]
POSTGRES_RELEASES = yaml.safe_load((REPO / "formulas" / "postgres" / "osmajorreleasemap.yaml").read_text())


def release_facts(host):
    """Values the registry's `expect` entries name, for this host's Debian release."""
    major = int(host.system_info.release.split(".")[0])
    return {"postgres_version": POSTGRES_RELEASES[major]["version"]}


def expected(host, topology, role, kind):
    """The services or packages the registry, as the topology resolves it
    (Patroni members with dcs hosts), expects on a holder of `role`."""
    facts = release_facts(host)
    entry = resolve_registry(REGISTRY, topology)["roles"][role]
    return {name.format(**facts) for name in entry["expect"][kind]}


def role_port_numbers(topology, registry, host_id, role):
    """(port, public, peers, listening) for each port a holder of `role`
    has: a host's port option wins, per-app ports come from the example
    apps; peers are the other hosts holding a role it is open to; a
    remote_only port is listened on only while there are peers."""
    for name, spec in registry["roles"][role]["ports"].items():
        number = role_port(topology, registry, host_id, role, name)
        public = "public" in spec["from"]
        peers = {h for r in spec["from"] if r != "public" for h in hosts_with(topology, r)} - {host_id}
        listening = public or bool(peers) or not spec.get("remote_only")
        for port in [number] if number else [app["port"] for app in APPS.values()]:
            yield port, public, peers, listening


def private_ports(topology, host_id, role):
    """Ports a holder of `role` listens on that only other roles may reach."""
    registry = resolve_registry(REGISTRY, topology)
    return [port for port, public, _, listening in role_port_numbers(topology, registry, host_id, role)
            if listening and not public]


HTTPS_PORT = role_ports("loadbalancer")["https"][0]


def request(address, path, method="GET", body=None, headers=None, port=HTTPS_PORT, timeout=30, tls=True):
    """One request to the site through a load balancer (HTTPS unless tls=False)."""
    return webclient.request(address, path, method, body, headers, port=port, timeout=timeout, tls=tls)


# Run on a lab host: GET argv[1]:argv[2]argv[3] with the site's Host;
# prints {status, headers, body (base64)}.
GET_FROM_HOST = """
import base64, http.client, json, sys
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=30)
conn.request("GET", sys.argv[3], headers={"Host": sys.argv[4]})
resp = conn.getresponse()
print(json.dumps({"status": resp.status, "headers": {k.lower(): v for k, v in resp.getheaders()},
                  "body": base64.b64encode(resp.read()).decode()}))
"""


def request_from(lab, host, address, path, port):
    """A GET sent from a lab host (private ports are closed to this machine)."""
    run = lab.exec(host, ["python3", "-c", GET_FROM_HOST, address, str(port), path, SITE_HOST], check=True)
    got = json.loads(run.stdout)
    return Response(got["status"], got["headers"], base64.b64decode(got["body"]))


def lab_layout(lab):
    """The topology a lab was brought up with, checked and normalised."""
    return stackpillar.check_topology(yaml.safe_load(lab.topology.path.read_text()), REGISTRY)


def free_address(lab, topology):
    """An address of the lab's network that no topology host nor the lab's
    own containers hold: for a host a test adds."""
    used = {h["address"] for h in topology["hosts"].values()} | {
        lab.address(h) for h in ("salt", "aptproxy", "acme", lab.outsider)} | set(lab.added.values())
    return next(str(a) for a in ipaddress.ip_network(topology["network"]).hosts()
                if str(a) not in used and a.packed[-1] > 1)


def site_secrets(lab):
    """The lab's secrets.sls (generated by stacklab/site.py): {'django': ..., 'postgres': ..., ...}."""
    return yaml.safe_load((lab.site_dir / "secrets.sls").read_text())["secrets"]


def app_secrets(lab, app="demo"):
    """(SECRET_KEY, database password) of an app of the lab's site."""
    secrets = site_secrets(lab)
    return secrets["django"][app]["secret_key"], secrets["postgres"]["users"][APPS[app]["database"]["user"]]


# Where a host keeps configuration, data and tools: what a secret left
# behind would be found in.
FILE_TREES = "/etc /srv /var /opt /root /home /usr/local"


def files_holding(lab, host, *values):
    """Files on ``host`` whose content holds any of ``values`` (grep -F)."""
    patterns = " ".join(f"-e {shlex.quote(v)}" for v in values)
    found = lab.exec(host, f"grep -rlF {patterns} {FILE_TREES} 2>/dev/null", check=False)
    return found.stdout.split()


def check_roles_exactly(lab, topology, only=None):
    """Each host (or those in ``only``) runs and enables the services of its
    roles; other roles' packages are absent."""
    for host_id, spec in topology["hosts"].items():
        if only is not None and host_id not in only:
            continue
        host = lab.host(host_id)
        wanted_services = {s for role in spec["roles"] for s in expected(host, topology, role, "services")}
        wanted_packages = {p for role in spec["roles"] for p in expected(host, topology, role, "packages")}
        for service in wanted_services:
            assert host.service(service).is_running, f"{host_id}: {service} not running"
            assert host.service(service).is_enabled, f"{host_id}: {service} not enabled"
        for role in REGISTRY["roles"]:
            for package in expected(host, topology, role, "packages") - wanted_packages:
                assert not host.package(package).is_installed, f"{host_id}: {package} ({role}) installed"


def check_private_listeners(lab, topology):
    """Database, cache, uWSGI and the media server listen on the private address, never on all."""
    for host_id, spec in topology["hosts"].items():
        host = lab.host(host_id)
        for port in (p for role in spec["roles"] for p in private_ports(topology, host_id, role)):
            assert host.socket(f"tcp://{spec['address']}:{port}").is_listening, (host_id, port)
            assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening, (host_id, port)
            assert not host.socket(f"tcp://:::{port}").is_listening, (host_id, port)


def sql_on(lab, host, query, database="demo", check=True):
    result = lab.exec(host, ["runuser", "-u", "postgres", "--", "psql", "-d", database, "-AtXc", query], check=check)
    return result.stdout.strip()


def leader(lab, topology):
    """The database host that accepts writes: the only one, or the Patroni
    member not in recovery."""
    members = hosts_with(topology, "database")
    if len(members) == 1:
        return members[0]
    for host in members:
        if sql_on(lab, host, "SELECT pg_is_in_recovery()", "postgres", check=False) == "f":
            return host
    raise AssertionError(f"no database member accepts writes: {members}")


def check_archiving(lab, topology):
    """pgbackrest check on the leader: it switches WAL and waits until the
    segment is in the repository (it fails if archiving does not work)."""
    lab.exec(leader(lab, topology), f"runuser -u postgres -- pgbackrest --stanza={BACKUP_STANZA} check",
             check=True, timeout=300)


# Backups (pgBackRest): the formula's defaults name the commands it installs.
PGBACKREST = formula_defaults("pgbackrest")
MEDIA_BACKUP = formula_defaults("media_backup")
SCRATCH_PSQL = f"psql -h /var/run/postgresql -p {PGBACKREST['scratch_port']} -d demo -AtX"


def backup_host(topology):
    return hosts_with(topology, "backup")[0]


def pgbackrest(lab, host, args, check=True, timeout=600):
    return lab.exec(host, f"runuser -u postgres -- pgbackrest --stanza={BACKUP_STANZA} {args}", check=check,
                    timeout=timeout).stdout


def backups(lab, topology):
    info = json.loads(pgbackrest(lab, backup_host(topology), "info --output=json"))
    return info[0]["backup"] if info else []


def wait_first_backup(lab, topology, timeout=300):
    """The deploy starts the first full backup in the background."""
    deadline = time.monotonic() + timeout
    while not backups(lab, topology):
        assert time.monotonic() < deadline, f"no backup {timeout}s after the deploy"
        time.sleep(2)


def restore_scratch(lab, host, name, args=""):
    command = PGBACKREST["restore_command"]
    lab.exec(host, f"{command} --drop {name} >/dev/null 2>&1; {command} {name} {args}", check=True, timeout=900)


def scratch_sql(lab, host, query):
    return lab.exec(host, ["runuser", "-u", "postgres", "--", *SCRATCH_PSQL.split(), "-c", query],
                    check=True).stdout.strip()


def drop_scratch(lab, host, name):
    lab.exec(host, f"{PGBACKREST['restore_command']} --drop {name}")


def sql(lab, topology, query):
    """A query on the database leader."""
    return sql_on(lab, leader(lab, topology), query)


def missing_visits(lab, topology, ids):
    """Of the acknowledged visit rows ``ids``, the ones the database lacks."""
    if not ids:
        return []
    found = sql(lab, topology, "SELECT id FROM visits_visit WHERE id = ANY(ARRAY["
                + ",".join(map(str, ids)) + "]::bigint[])").split()
    return sorted(set(ids) - {int(i) for i in found})


def steps_waiting_for(topology, name):
    """The deploy steps that wait for step ``name``, directly or through
    another step, as the ordered deploy runs them for this topology."""
    waiting = set()
    for step in stackpillar.deploy_steps(topology, REGISTRY):
        if name in step.needs or waiting & set(step.needs):
            waiting.add(step.name)
    return sorted(waiting)


def lb_cache_keys(lab, lb, cache):
    """The keys of the responses load balancer ``lb`` keeps in ``cache`` (a
    directory; each file holds a line "KEY: <key>")."""
    found = lab.exec(lb, ["grep", "-rahoP", "--", r"^KEY: \K.*", cache]).stdout
    return set(found.split())


def kept_by_lb(lab, lb, path, cache=STATIC_CACHE):
    """Whether load balancer ``lb`` keeps ``path`` in ``cache`` (a key ends with it)."""
    return any(key.endswith(path) for key in lb_cache_keys(lab, lb, cache))


def check_site(lab, topology):
    """Through every load balancer: page, row read back, cache hit, static from media, upload."""
    media_hosts = set(hosts_with(topology, "media"))
    app_hosts = set(hosts_with(topology, "app"))
    for lb in hosts_with(topology, "loadbalancer"):
        address = lab.address(lb)

        page = request(address, "/")
        assert page.status == 200, page.text[:500]
        assert page.header("x-app-host") in app_hosts
        # The row this request wrote is in the database, written by the host that served it.
        visit_id = re.search(r'id="visit-id">#(\d+)<', page.text).group(1)
        assert sql(lab, topology, f"SELECT host FROM visits_visit WHERE id = {visit_id}") == page.header("x-app-host")

        # The page value is cached in memcached: a request after one that missed is a hit.
        second = request(address, "/")
        assert second.status == 200
        assert second.header("x-cache") == "hit", (page.header("x-cache"), second.header("x-cache"))

        # The leader's publish keeps a short history of static releases on
        # the media hosts (djangostack.publish --keep; the formula's default).
        kept = formula_defaults("django")["app_defaults"]["static_releases_kept"]
        index = request(address, "/static/staticfiles-releases/index.json")
        assert index.status == 200 and 1 <= len(json.loads(index.body)) <= kept, (index.status, index.text[:200])
        # It changes in place: revalidated, never kept by the LB or a browser.
        assert index.header("cache-control") == "no-cache", index.headers

        # A whole page from the caches: rendered once, then the same bytes.
        # An expired copy at the load balancer answers once more while one
        # request renders it again (use_stale updating), so either the
        # first two or the last two of three are the same.
        recent = [request(address, "/recent") for _ in range(3)]
        assert [r.status for r in recent] == [200] * 3 and "visits so far" in recent[0].text
        assert recent[0].text == recent[1].text or recent[1].text == recent[2].text
        # The load balancer keeps what the app marks cacheable, only that.
        pages = lb_cache_keys(lab, lb, PAGE_CACHE)
        assert any(key.endswith("/recent") for key in pages), pages
        assert not any(key.endswith(("/", "/healthz")) for key in pages), pages

        # The stylesheet (hashed name from the manifest) comes from a media host.
        css = re.search(r'href="(/static/[^"]+\.css)"', page.text).group(1)
        assert re.search(r"\.[0-9a-f]{12}\.css$", css), css
        static = request(address, css)
        assert static.status == 200
        assert static.header("x-media-host") in media_hosts
        assert static.header("cache-control") == "public, max-age=31536000, immutable", static.headers
        assert request(address, css).body == static.body
        assert kept_by_lb(lab, lb, css), f"{css} not in {lb}'s {STATIC_CACHE}"

        check_upload(lab, lb, media_hosts)


class Uploader:
    """Uploads through a load balancer, as a browser does: the form's CSRF
    token and cookie once, then POST /upload/ (multipart) per file."""

    def __init__(self, address):
        self.address = address
        form = request(address, "/")
        self.token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        self.cookie = re.search(r"csrftoken=([^;]+)", form.header("set-cookie") or "").group(1)

    def upload(self, filename, content, content_type="text/plain", timeout=30):
        """The response to the POST (302 when stored)."""
        boundary = uuid.uuid4().hex
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrfmiddlewaretoken\"\r\n\r\n{self.token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
        return request(self.address, "/upload/", "POST", body, {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Cookie": f"csrftoken={self.cookie}",
            # A browser names the page the form came from (Django checks it over HTTPS).
            "Origin": f"https://{SITE_HOST}",
            "Referer": f"https://{SITE_HOST}/",
        }, timeout=timeout)


def uploads_named(lab, topology, stem):
    """Stored names (media-relative) of the uploads whose file name began with ``stem``."""
    rows = sql(lab, topology, f"SELECT file FROM visits_upload WHERE file LIKE 'uploads/%/{stem}%' ORDER BY id")
    return rows.split() if rows else []


def media_file(lab, host, name, app="demo"):
    """The bytes of an upload on a media host's disk (None when missing)."""
    got = lab.exec(host, ["cat", f"{MEDIA_ROOT}/{app}/media/{name}"])
    return got.stdout.encode() if got.returncode == 0 else None


def check_upload(lab, lb_host, media_hosts):
    """An upload through the LB is at once downloadable through the LB, from a media host,
    with headers that keep a browser from running it."""
    address = lab.address(lb_host)
    content = f"uploaded {uuid.uuid4()}\n".encode()
    posted = Uploader(address).upload("note.html", content, "text/html")
    assert posted.status == 302, posted.text[:1000]
    page = request(address, "/")
    links = re.findall(r'<a href="(/media/[^"]+)"', page.text)
    assert links, page.text[:1000]
    # The newest upload is listed first.
    got = request(address, links[0])
    assert got.status == 200
    assert got.body == content
    assert got.header("x-content-type-options") == "nosniff"
    assert "sandbox" in got.header("content-security-policy")
    assert got.header("content-disposition").startswith("attachment")
    # Already on every media host, whichever the load balancer picks next.
    for media in media_hosts:
        direct = request_from(lab, lb_host, lab.address(media), links[0], MEDIA_PORT)
        assert (direct.status, direct.body) == (200, content), media


# Run on an app host (python3 -c, as root): for each media host given as
# address:port, the statuses of WebDAV requests on a fresh name under
# /demo/media/ with no credential, a wrong password, and demo's own from its
# env file. Prints JSON; never prints the credential.
DAV_PROBE = r"""
import base64, http.client, json, sys, uuid
with open("/etc/django-apps/demo.env") as f:
    env = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line and not line.startswith("#"))
right = env["DJANGO_MEDIA_WRITE_CREDENTIAL"]
wrong = right.split(":", 1)[0] + ":wrong-" + uuid.uuid4().hex

def status(target, method, path, credential=None):
    address, port = target.rsplit(":", 1)
    headers = {"Authorization": "Basic " + base64.b64encode(credential.encode()).decode()} if credential else {}
    conn = http.client.HTTPConnection(address, int(port), timeout=30)
    try:
        conn.request(method, path, body=b"probe" if method == "PUT" else None, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()

results = {}
for target in sys.argv[1:]:
    path = "/demo/media/auth-probe-" + uuid.uuid4().hex + ".txt"
    results[target] = {
        "put without": status(target, "PUT", path),
        "put wrong": status(target, "PUT", path, wrong),
        "put": status(target, "PUT", path, right),
        "delete without": status(target, "DELETE", path),
        "delete": status(target, "DELETE", path, right),
        "get after": status(target, "GET", path, right),
    }
print(json.dumps(results))
"""


def check_media_write_auth(lab, topology):
    """Media writes need the app's credential besides an app host's address:
    without it or with a wrong password 401 and nothing stored (the right
    PUT then creates: 201, not 204), with it a PUT and a DELETE work; the
    media hosts hold only its hash, in a file nginx's workers alone read."""
    media_hosts = hosts_with(topology, "media")
    targets = [f"{lab.address(h)}:{MEDIA_DAV_PORT}" for h in media_hosts]
    for app_host in hosts_with(topology, "app"):
        got = json.loads(lab.exec(app_host, ["python3", "-c", DAV_PROBE, *targets], check=True).stdout)
        assert got == {t: {"put without": 401, "put wrong": 401, "put": 201, "delete without": 401,
                           "delete": 204, "get after": 404} for t in targets}, (app_host, got)
    env = lab.host(hosts_with(topology, "app")[0]).file("/etc/django-apps/demo.env").content_string
    token = re.search(r"^DJANGO_MEDIA_WRITE_CREDENTIAL=demo:(\S+)$", env, re.M).group(1)
    for host_id in media_hosts:
        writers = lab.host(host_id).file(f"{MEDIA_WRITERS}/demo")
        assert (writers.user, writers.group, writers.mode) == ("root", "www-data", 0o640), host_id
        assert re.search(r"^demo:\{SSHA\}", writers.content_string, re.M), host_id
        assert token not in writers.content_string, host_id
        if "app" not in topology["hosts"][host_id]["roles"]:
            assert token not in repr(lab.pillar(host_id)), host_id


def wait_healthy(lab, topology, timeout=60):
    """Every app host answers /healthz through the first load balancer."""
    address = lab.address(hosts_with(topology, "loadbalancer")[0])
    deadline = time.monotonic() + timeout
    while True:
        got = request(address, "/healthz")
        if got.status == 200:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"/healthz: {got.status} {got.text[:300]}")
        time.sleep(2)


def wait_every_app_host_healthy(lab, topology, timeout=120):
    """Until every app host answers /healthz with 200 through the first load
    balancer, in one round of sequential requests: {host: 200s in that round}.
    (While other traffic interleaves, round robin can send one client's
    requests to one host only: ask alone.)"""
    address = lab.address(hosts_with(topology, "loadbalancer")[0])
    wanted = set(hosts_with(topology, "app"))
    deadline = time.monotonic() + timeout
    while True:
        answers = [request(address, "/healthz") for _ in range(4 * len(wanted))]
        seen = collections.Counter(a.header("x-app-host") for a in answers if a.status == 200)
        if set(seen) >= wanted:
            return dict(seen)
        if time.monotonic() > deadline:
            raise AssertionError(f"app hosts answering /healthz 200 after {timeout} s: {dict(seen)} of "
                                 f"{sorted(wanted)}")
        time.sleep(2)


@dataclasses.dataclass
class LoadResult:
    requests: int
    per_second: float
    non_2xx: int
    socket_errors: int
    new_cache_connections: int
    database_connections: int
    database_connection_limit: int


def memcached_total_connections(lab, topology):
    """Connections each memcached has accepted since it started, summed."""
    total = 0
    for host in hosts_with(topology, "cache"):
        # On the cache host itself: its port is closed to this machine.
        data = lab.exec(host, ["python3", "-c", MEMCACHED_STATS, lab.address(host), str(MEMCACHED_PORT)],
                        check=True).stdout
        total += int(re.search(r"STAT total_connections (\d+)", data).group(1))
    return total


MEMCACHED_STATS = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as conn:
    conn.sendall(b"stats\\r\\n")
    data = b""
    while not data.endswith(b"END\\r\\n"):
        data += conn.recv(65536)
print(data.decode())
"""


def vassal_workers(lab, host):
    """Worker threads of the demo vassal: each holds one database connection."""
    ini = lab.exec(host, "cat /etc/uwsgi-emperor/vassals/demo.ini", check=True).stdout
    processes = int(re.search(r"^processes\s*=\s*(\d+)", ini, re.M).group(1))
    threads = re.search(r"^threads\s*=\s*(\d+)", ini, re.M)
    return processes * (int(threads.group(1)) if threads else 1)


VASSAL_SPAWNS = """
import json, socket, sys
conn = socket.socket(socket.AF_UNIX)
conn.connect(sys.argv[1])
data = b""
while chunk := conn.recv(65536):
    data += chunk
print(json.dumps([w["last_spawn"] for w in json.loads(data)["workers"]]))
"""


def vassal_spawn_times(lab, host, vassal="demo"):
    """When each worker of the vassal was spawned (epoch seconds), from its
    stats socket (formula uwsgi: <stats_dir>/<vassal>/stats.sock)."""
    stats_dir = formula_defaults("uwsgi")["stats_dir"]
    out = lab.exec(host, ["python3", "-c", VASSAL_SPAWNS, f"{stats_dir}/{vassal}/stats.sock"], check=True).stdout
    return json.loads(out)


def longest_gaps(answered, hosts, start, end):
    """{host: the longest time (s) within [start, end] in which ``answered``
    ([(elapsed, host)]) has no answer from it}: how long the load balancer
    sent it nothing that came back."""
    gaps = {}
    for host in hosts:
        times = [start] + [at for at, who in answered if who == host and start <= at <= end] + [end]
        gaps[host] = max(b - a for a, b in zip(times, times[1:]))
    return gaps


def sustained_load(lab, topology, seconds, say=print, connections=32):
    """wrk against /healthz (a database query and a cache round trip per request)
    through the first load balancer, bounded by `seconds`."""
    address = lab.address(hosts_with(topology, "loadbalancer")[0])
    before = memcached_total_connections(lab, topology)
    run = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
         "-H", f"Host: {SITE_HOST}", f"https://{address}/healthz"],
        capture_output=True, text=True, timeout=seconds + 60, check=True)
    say(run.stdout)
    out = run.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    db_connections = int(sql(lab, topology, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'demo' AND pid <> pg_backend_pid()"))
    return LoadResult(
        requests=requests,
        per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        new_cache_connections=memcached_total_connections(lab, topology) - before,
        database_connections=db_connections,
        database_connection_limit=sum(vassal_workers(lab, h) for h in hosts_with(topology, "app")),
    )


# Run on a lab host: [[address, port], ...] on stdin; prints
# {"address port": "open" | "closed" | "filtered"} (closed: refused;
# filtered: no answer, the firewall dropped it).
SCAN = """
import asyncio, json, sys
async def probe(address, port):
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 2)
        writer.close()
        return "open"
    except ConnectionRefusedError:
        return "closed"
    except (asyncio.TimeoutError, OSError):
        return "filtered"
async def main(targets):
    found = await asyncio.gather(*(probe(a, p) for a, p in targets))
    print(json.dumps({f"{a} {p}": f for (a, p), f in zip(targets, found)}))
asyncio.run(main(json.load(sys.stdin)))
"""
# A port no role uses: closed to everyone (the firewall drops it).
UNUSED_PORT = 9


def port_plan(topology):
    """From the registry alone: {host: {port: (listening, allowed sources or
    None for anyone)}} for every port a role could use on a host, ssh
    (admin networks only: no lab host) and a port no role uses."""
    registry = resolve_registry(REGISTRY, topology)
    plan = {}
    for host_id, spec in topology["hosts"].items():
        ports = {SSH_PORT: (False, set()), UNUSED_PORT: (False, set())}
        for role in registry["roles"]:
            for port, public, peers, listening in role_port_numbers(topology, registry, host_id, role):
                ports.setdefault(port, (False, set()))
                if role in spec["roles"]:
                    ports[port] = (True, None) if public else (listening, peers)
        plan[host_id] = ports
    return plan


def expected_scan(topology, source):
    """What ``source`` (a topology host, or the outsider: None) finds on
    every other host: open where a role listens and lets it in, closed
    where it is let in but nothing listens, filtered everywhere else."""
    found = {}
    for target, ports in port_plan(topology).items():
        if target == source:
            continue
        address = topology["hosts"][target]["address"]
        for port, (listening, allowed) in ports.items():
            let_in = allowed is None or source in allowed
            found[f"{address} {port}"] = ("open" if listening else "closed") if let_in else "filtered"
    return found


def scan_from(lab, host, targets):
    run = lab.exec(host, ["python3", "-c", SCAN], input=json.dumps(targets), check=True, timeout=120)
    return json.loads(run.stdout)


def check_firewalls(lab, topology, say=print):
    """Every topology host and the outsider scan every other topology host;
    what they find is exactly what the registry allows. Prints the open
    ports per source and target."""
    sources = {h: h for h in topology["hosts"]} | {lab.outsider: None}

    def scan(source):
        expected = expected_scan(topology, sources[source])
        targets = [[a, int(p)] for a, p in (key.split() for key in expected)]
        return source, expected, scan_from(lab, source, targets)

    with concurrent.futures.ThreadPoolExecutor(len(sources)) as pool:
        results = list(pool.map(scan, sources))
    names = {spec["address"]: h for h, spec in topology["hosts"].items()}
    wrong = []
    for source, expected, found in results:
        for target in dict.fromkeys(key.split()[0] for key in found):
            opened = sorted(int(k.split()[1]) for k, v in found.items() if k.startswith(f"{target} ") and v == "open")
            say(f"  {source:>28} -> {names[target]:<28} open: {' '.join(map(str, opened)) or '-'}")
        wrong += [f"{source} -> {names[k.split()[0]]}:{k.split()[1]}: {found.get(k)}, expected {v}"
                  for k, v in expected.items() if found.get(k) != v]
    assert not wrong, "\n".join(wrong)


def acme_root(lab):
    """The root certificate pebble (the lab's ACME server) signs with; a new
    one at each start of pebble."""
    from stacklab.site import ACME_MANAGEMENT_PORT

    context = ssl.create_default_context(cafile=str(lab.dir / "acme" / "ca.pem"))
    conn = http.client.HTTPSConnection(lab.address("acme"), ACME_MANAGEMENT_PORT, timeout=30, context=context)
    try:
        conn.request("GET", "/roots/0")
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        return resp.read().decode()
    finally:
        conn.close()


def site_names():
    """The demo app's names a certificate can cover (DNS names with a dot)."""
    return stackpillar.site.certificate_names(APPS["demo"]["server_names"])


def tls_handshake(address, name, context):
    """(certificate as a dict or None, DER, TLS version, ALPN protocol) of a handshake naming ``name``."""
    with socket.create_connection((address, HTTPS_PORT), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=name) as conn:
            return conn.getpeercert(), conn.getpeercert(binary_form=True), conn.version(), conn.selected_alpn_protocol()


def verified_certificate(lab, lb, root):
    """The certificate ``lb`` serves for the site, verified against ``root``
    for each of the site's names: (subject alt names, serial, DER)."""
    context = ssl.create_default_context(cadata=root)
    context.set_alpn_protocols(["h2", "http/1.1"])
    found = None
    for name in site_names():
        cert, der, version, alpn = tls_handshake(lab.address(lb), name, context)
        assert version in ("TLSv1.2", "TLSv1.3") and alpn == "h2", (lb, version, alpn)
        found = (sorted(v for k, v in cert["subjectAltName"] if k == "DNS"), cert["serialNumber"], der)
    return found


def tls_1_1_refusal(address):
    """The error of a TLS 1.1 handshake (the client allows it; the server must not)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        tls_handshake(address, site_names()[0], context)
    except ssl.SSLError as exc:
        return str(exc)
    return None


def check_https(lab, topology, say=print):
    """Every load balancer: a certificate pebble's CA signed for the site's
    names, TLS 1.2+ with HTTP/2, HSTS, http:// redirected, TLS 1.1 refused."""
    root = acme_root(lab)
    for lb in hosts_with(topology, "loadbalancer"):
        address = lab.address(lb)
        names, serial, _ = verified_certificate(lab, lb, root)
        assert names == sorted(site_names()), (lb, names)
        page = request(address, "/")
        assert page.status == 200
        assert page.header("strict-transport-security") == "max-age=31536000; includeSubDomains", page.headers
        plain = request(address, "/some/page?x=1", port=80, tls=False)
        assert plain.status == 301 and plain.header("location") == f"https://{SITE_HOST}/some/page?x=1", plain.headers
        refused = tls_1_1_refusal(address)
        # The server's alert, not a client that could not offer TLS 1.1.
        assert refused and "PROTOCOL_VERSION" in refused.upper(), refused
        say(f"  {lb}: certificate {serial} for {', '.join(names)} from the ACME server's CA; "
            f"http redirects; TLS 1.1: {refused}")


class LayoutSuite:
    """What every layout must show once deployed; a module marks its layout and subclasses this."""

    @pytest.fixture(scope="class")
    def topology(self, request):
        return load_layout(request.node.get_closest_marker("layout").args[0])

    def test_second_apply_changes_nothing_and_leaves_other_minions_alone(self, lab):
        assert lab.highstate() == {host: 0 for host in lab.hosts}
        # A minion of the same master outside the topology applies its own
        # base states and nothing of the stack.
        assert lab.state_ids(lab.outsider) == lab.outsider_state_ids

    def test_each_host_runs_exactly_its_roles(self, lab, topology):
        check_roles_exactly(lab, topology)

    def test_site_through_every_load_balancer(self, lab, topology):
        check_site(lab, topology)

    def test_private_services_listen_on_the_private_address_only(self, lab, topology):
        check_private_listeners(lab, topology)

    def test_https_on_every_load_balancer_with_a_certificate_from_the_acme_server(self, lab, topology, say):
        check_https(lab, topology, say)

    def test_every_port_is_open_exactly_to_the_roles_the_registry_names(self, lab, topology, say):
        check_firewalls(lab, topology, say)

    def test_media_writes_need_the_apps_credential(self, lab, topology):
        check_media_write_auth(lab, topology)

    def test_secrets_only_on_hosts_that_use_them(self, lab, topology):
        secrets = site_secrets(lab)
        secret_key, db_password = app_secrets(lab)
        for host_id, spec in topology["hosts"].items():
            roles = set(spec["roles"])
            pillar = repr(lab.pillar(host_id))
            assert (secret_key in pillar) == ("app" in roles), host_id
            assert (db_password in pillar) == bool(roles & {"app", "database"}), host_id
            # Patroni's passwords: on its members only, and only when there are any.
            patroni_member = "database" in roles and bool(hosts_with(topology, "dcs"))
            for name, password in secrets["patroni"].items():
                assert (password in pillar) == patroni_member, (host_id, name)
            if "app" in roles:
                env_file = lab.host(host_id).file("/etc/django-apps/demo.env")
                assert (env_file.user, env_file.group, env_file.mode) == ("root", "demo", 0o640)
                assert secret_key in env_file.content_string


class Background:
    """A bounded loop in a thread while a ``with`` block runs: step() every
    ``interval`` seconds until the block ends or ``limit`` seconds passed."""

    interval, limit = 0.1, 1200

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self.started = time.monotonic()

    def _run(self):
        self.started = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - self.started < self.limit:
            self.step()
            time.sleep(self.interval)

    def elapsed(self):
        return round(time.monotonic() - self.started, 1)

    def step(self):
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class Pinger(Background):
    """test.ping from the master to ``hosts``, again and again: counts the
    answers each host gave and missed."""

    interval = 0.2

    def __init__(self, lab, hosts):
        super().__init__()
        self.lab, self.hosts = lab, list(hosts)
        self.sent, self.missed = 0, []

    def step(self):
        got = self.lab.salt("-L", ",".join(self.hosts), "test.ping", "--timeout=10")
        self.sent += 1
        self.missed += [(self.elapsed(), h) for h in self.hosts if got.get(h) is not True]


class Traffic(Background):
    """Writes (POST /api/visits, acknowledged by a 201 with the row id) and,
    with reads, reads (GET /) in turn through the load balancer, one every
    0.1 s, until stopped or for 20 minutes at most. ``acked`` holds the
    acknowledged row ids, ``acked_at`` the wall-clock time of each."""

    def __init__(self, address, reads=True):
        super().__init__()
        self.address, self.reads = address, reads
        self.sent = self.failed = 0
        self.acked, self.acked_at = [], []
        self.failures = []

    def step(self):
        write = not self.reads or self.sent % 2 == 0
        self.sent += 1
        try:
            got = request(self.address, "/api/visits" if write else "/", "POST" if write else "GET",
                          b"" if write else None, timeout=10)
            ok = got.status == (201 if write else 200)
            if ok and write:
                self.acked.append(json.loads(got.body)["id"])
                self.acked_at.append(time.time())
            why = got.status
        except (OSError, ValueError) as exc:
            ok, why = False, type(exc).__name__
        if not ok:
            self.failed += 1
            self.failures.append((self.elapsed(), "write" if write else "read", why))

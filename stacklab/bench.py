"""``./lab bench``: the stack measured against its references on a deployed
lab, in one run (issue 12). The numbers are stacklab/bench_results.py's;
this module only drives the lab.

Groups of rows, in the order they run (``--only`` picks some):

- ``convergence``: the no-op re-apply (orchestrate.deploy, ``rounds``
  times) against the first ordered deploy, measured only with
  ``--first-deploy`` on a lab just brought up without a deploy.
- ``static``: 16 KiB and 200 KiB files through the load balancer (HTTPS,
  the site's Host) against the first media host's nginx directly.
- ``django``: a cached page, /healthz and the demo page through LB -> uWSGI against
  ``gunicorn demoproject.wsgi`` with gunicorn's defaults (one sync
  worker, 127.0.0.1:8000) on the first app host: same code, env file,
  database and cache.
- ``sustained``: the same three pages through the LB for
  ``--sustain`` seconds (60 or more).
- ``replication`` (Patroni layouts): replay lag under pgbench on the leader.
- ``scale-out`` (two app hosts or more): the last app host loses the app
  role (deployed), then gets it back: seconds from the topology edit until
  the LB sends it requests.
- ``failover`` (Patroni layouts): the leader killed under writes through
  the LB; seconds until writes are acknowledged again.

Fairness: both sides of a pair run from the same client host with the same
wrk settings, interleaved (stack, reference, stack, ...), after a 2 s
warm-up of each that is not counted. The media port is open only to load
balancers, so static rows run wrk on the first LB host (against its own
address for the stack side); gunicorn listens on 127.0.0.1, so django rows
run wrk on that app host (against the LB's address for the stack side).
wrk takes SNI from the URL (the LB's address) and the Host header names the
site. Every lab host shares the machine's cores, so ratios carry over,
absolute figures do not.

What stays on the hosts: wrk (apt) on the client hosts, the bench files
in the media hosts' static tree, gunicorn under /var/lib/stacklab-bench on
the app host (not in the app's venv).
"""
from __future__ import annotations

import contextlib
import http.client
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import docker, webclient
from .bench_results import (Row, failover_seconds, interleaved, lag_figures, load_row, markdown_table,
                            parse_lag_samples, parse_pgbench_tps, parse_wrk, skipped_row, timing_row,
                            write_results, writes_back)
from .util import LabError

GROUPS = ("convergence", "static", "django", "sustained", "replication", "scale-out", "failover")
STATIC_FILES = {"16k": 16 * 1024, "200k": 200 * 1024}


def static_name(size: str) -> str:
    """A bench file's name, hashed as collectstatic's are (12 hex digits), so
    the media hosts mark it immutable and the load balancers may keep it."""
    return f"bench-{size}.0123456789ab.bin"


@dataclass(frozen=True)
class DjangoPage:
    id: str
    what: str
    path: str
    headers: tuple[str, ...] = ()   # sent to both sides, besides WRK_HEADERS


# An Authorization header: the load balancer neither reads nor fills its
# page cache (nginx formula, page_cache), so uWSGI answers every request.
PAST_THE_PAGE_CACHE = ("Authorization: Bearer stacklab-bench",)
DJANGO_PAGES = (
    DjangoPage("cached", "a cached page /recent (rendered once a minute; kept by the LB as its "
                         "Cache-Control allows, else from memcached)", "/recent"),
    DjangoPage("cached-app", "the same page past the LB's page cache (an Authorization header): "
                             "uWSGI answers, from memcached", "/recent", PAST_THE_PAGE_CACHE),
    DjangoPage("healthz", "/healthz (a database query, a cache set/get/delete)", "/healthz"),
    DjangoPage("page", "the demo page / (writes a visit, reads, renders)", "/"))
# Sent to both sides: the site's name, and what the LB tells the app (so
# gunicorn's Django, like uWSGI's, does not redirect to HTTPS).
WRK_HEADERS = (f"Host: {webclient.SITE_HOST}", "X-Forwarded-Proto: https")
WARMUP_SECONDS = 2
GUNICORN = "gunicorn==23.0.0"
GUNICORN_BIND = "127.0.0.1:8000"      # gunicorn's default bind, given explicitly
GUNICORN_UNIT = "stacklab-bench-gunicorn"
BENCH_DIR = "/var/lib/stacklab-bench"  # on lab hosts
PGBENCH_DB = "stacklab_bench"
LAG_INTERVAL = 0.1
# A request that failed (refused, reset, cut short, timed out).
REQUEST_ERRORS = (OSError, http.client.HTTPException)


@dataclass
class Options:
    rounds: int = 3
    seconds: int = 10
    sustain: int = 60
    connections: int = 32
    threads: int = 2
    out: Path | None = None
    only: tuple[str, ...] = GROUPS
    first_deploy: bool = False
    app: str = "demo"


@dataclass
class AppPaths:
    user: str
    group: str
    src: str
    venv: str
    env_file: str
    settings_module: str
    wsgi_module: str


def formula_defaults(repo: Path, formula: str) -> dict:
    return yaml.safe_load((repo / "formulas" / formula / "defaults.yaml").read_text())[formula]


def app_paths(apps: dict, django: dict, name: str) -> AppPaths:
    """An app's user, directories and modules from the site's apps.sls
    (``apps``) and the django formula's defaults, as formulas/django/apps.jinja
    derives them."""
    app = {**django["app_defaults"], **apps[name]}
    user = app.get("user") or name
    root = app.get("root") or f"{django['apps_root']}/{name}"
    return AppPaths(user, app.get("group") or user, f"{root}/src", f"{root}/venv",
                    f"{django['env_dir']}/{name}.env", app["settings_module"], app["wsgi_module"])


def registry_port(registry: dict, role: str, name: str) -> int:
    return int(registry["roles"][role]["ports"][name]["port"])


def without_role(topology_text: str, host: str, role: str) -> str:
    """A topology file's YAML with ``role`` (and its options) taken from ``host``."""
    data = yaml.safe_load(topology_text)
    spec = data["topology"]["hosts"][host]
    spec["roles"] = [r for r in spec["roles"] if r != role]
    (spec.get("options") or {}).pop(role, None)
    return yaml.safe_dump(data, sort_keys=False)


def wrk_argv(url: str, seconds: int, threads: int, connections: int, extra_headers=()) -> list[str]:
    headers = [arg for h in (*WRK_HEADERS, *extra_headers) for arg in ("-H", h)]
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s",
            *headers, url]


def lag_sampler_sql(seconds: int, interval: float = LAG_INTERVAL) -> str:
    """A DO block raising a notice per sample, ``interval`` apart for
    ``seconds``: each replica's replay_lag (0 when caught up and idle).
    COMMIT per sample: no snapshot is held while it runs."""
    count = max(1, round(seconds / interval))
    lags = ("string_agg(application_name || '=' || coalesce(extract(epoch FROM replay_lag), 0)::text, ' ')")
    return (f"DO $$ DECLARE lags text; BEGIN FOR i IN 1..{count} LOOP "
            f"SELECT {lags} INTO lags FROM pg_stat_replication; "
            "RAISE NOTICE 'lag % %', extract(epoch FROM clock_timestamp()), coalesce(lags, ''); "
            f"COMMIT; PERFORM pg_sleep({interval}); END LOOP; END $$;")


def pgbench_script(seconds: int, clients: int = 8, scale: int = 10) -> str:
    """sh for the Patroni leader: a scratch database, pgbench's write load
    for ``seconds`` with the lag sampler beside it (its notices on stderr,
    pgbench's report on stdout), then the database dropped."""
    pg = "runuser -u postgres --"
    return "\n".join([
        "set -e",
        f"{pg} dropdb --if-exists {PGBENCH_DB}",
        f"{pg} createdb {PGBENCH_DB}",
        f"{pg} pgbench -i -q -s {scale} {PGBENCH_DB} >/dev/null 2>&1",
        "samples=$(mktemp)",
        f"{pg} psql -X -q -d postgres -v ON_ERROR_STOP=1 -c {shlex.quote(lag_sampler_sql(seconds))} 2>\"$samples\" &",
        f"{pg} pgbench -n -c {clients} -j 2 -T {seconds} {PGBENCH_DB}",
        "wait",
        "cat \"$samples\" >&2",
        f"{pg} dropdb {PGBENCH_DB}",
    ])


def machine_info() -> dict:
    def read(path):
        with contextlib.suppress(OSError):
            return Path(path).read_text()
        return ""

    cpu = re.search(r"^model name\s*:\s*(.+)$", read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", read("/proc/meminfo"), re.M)
    return {"cpus": os.cpu_count(), "cpu": cpu.group(1).strip() if cpu else "?",
            "memory_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None, "kernel": platform.release()}


# --- the run -----------------------------------------------------------------

@dataclass
class Bench:
    lab: object
    opts: Options
    rows: list[Row] = field(default_factory=list)
    clients: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        topo = self.lab.topology
        self.say = self.lab.progress
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out = self.opts.out or self.lab.settings.state_dir / "bench" / f"{self.lab.name}-{stamp}"
        self.lb = topo.with_role("loadbalancer")[0].id
        self.https_port = registry_port(topo.registry, "loadbalancer", "https")
        self._raw = 0

    def run(self) -> list[Row]:
        for group in GROUPS:
            if group in self.opts.only:
                self.say(f"bench: {group}")
                self.rows += RUNNERS[group](self)
                self.write()
        return self.rows

    def meta(self) -> dict:
        o = self.opts
        warnings = [w for bad, w in ((o.rounds < 3, "fewer than 3 rounds: not a result to publish"),
                                     (o.sustain < 60, "sustained load under 60 s")) if bad]
        clients = ", ".join(f"{g} from {h}" for g, h in self.clients.items())
        return {"layout": self.lab.name, "release": self.lab.release, "started": self.started,
                "machine": machine_info(),
                "settings": {"rounds": o.rounds, "seconds": o.seconds, "sustain": o.sustain,
                             "threads": o.threads, "connections": o.connections},
                "method": f"wrk -t{o.threads} -c{o.connections} --latency; pairs interleaved, medians of the "
                          f"rounds, a {WARMUP_SECONDS} s warm-up per side not counted; both sides of a pair "
                          f"from one client host ({clients or 'none'})",
                "warnings": warnings}

    def write(self) -> dict[str, Path]:
        return write_results(self.out, self.meta(), self.rows)

    def save_raw(self, name: str, text: str) -> None:
        self._raw += 1
        path = self.out / "raw" / f"{self._raw:03d}-{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    # --- load ---------------------------------------------------------------
    def wrk(self, host: str, url: str, seconds: int, name: str, headers=()):
        run = self.lab.exec(host, wrk_argv(url, seconds, self.opts.threads, self.opts.connections, headers),
                            check=True, timeout=seconds + 120)
        self.save_raw(name, run.stdout)
        return parse_wrk(run.stdout)

    def site_url(self, path: str) -> str:
        return f"https://{self.lab.address(self.lb)}:{self.https_port}{path}"

    def compare(self, row_id: str, title: str, client: str, path: str, reference_base: str, note: str = "",
                headers=()) -> Row:
        """``path`` through the LB and from ``reference_base``, both from ``client``."""
        stack_url, reference_url = self.site_url(path), reference_base + path
        for url in (stack_url, reference_url):
            self.wrk(client, url, WARMUP_SECONDS, f"{row_id}-warmup", headers)
        seconds = self.opts.seconds
        stack, reference = interleaved(
            self.opts.rounds,
            lambda: self.wrk(client, stack_url, seconds, f"{row_id}-stack", headers),
            lambda: self.wrk(client, reference_url, seconds, f"{row_id}-reference", headers))
        return load_row(row_id, title, stack, reference, note)

    def served_by(self, host: str, since: float, timeout: float = 300) -> float | None:
        """Seconds from ``since`` until a response through the LB carries
        ``host`` in X-App-Host (None: not within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(*REQUEST_ERRORS):
                got = webclient.request(self.lab.address(self.lb), "/healthz", port=self.https_port, timeout=10)
                if got.header("x-app-host") == host:
                    return time.monotonic() - since
            time.sleep(0.5)
        return None

    def write_loop(self, log: list, stop: threading.Event, start: float, limit: float = 150) -> None:
        """POST /api/visits through the LB until stopped (at most ``limit``
        seconds, 6000 writes): (seconds since start, acknowledged) each."""
        while not stop.is_set() and time.monotonic() - start < limit and len(log) < 6000:
            t = time.monotonic() - start
            try:
                ok = webclient.request(self.lab.address(self.lb), "/api/visits", "POST", b"",
                                       port=self.https_port, timeout=5).status == 201
            except REQUEST_ERRORS:
                ok = False
            log.append((t, ok))
            if not ok:
                time.sleep(0.2)


# --- lab helpers ------------------------------------------------------------

def ensure_wrk(lab, host: str) -> None:
    """wrk on a lab host (Debian's package, through the lab's apt proxy)."""
    lab.exec(host, "command -v wrk >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive "
                   "apt-get install -y -q --no-install-recommends wrk; } >/dev/null", check=True, timeout=600)


def put_static_files(lab, host: str, directory: str) -> None:
    """STATIC_FILES (random bytes) in ``directory`` on a media host, owned as
    the tree is; kept when already there with the right size."""
    lines = [f"d={shlex.quote(directory)}",
             'test -d "$d" || { echo "$d missing: is the lab deployed?" >&2; exit 1; }']
    for size, length in STATIC_FILES.items():
        lines.append(f'f="$d/{static_name(size)}"; [ "$(stat -c %s "$f" 2>/dev/null)" = {length} ] || '
                     f'{{ head -c {length} /dev/urandom >"$f.tmp" && chown --reference="$d" "$f.tmp" && '
                     f'chmod 0644 "$f.tmp" && mv "$f.tmp" "$f"; }}')
    lab.exec(host, "set -e\n" + "\n".join(lines), check=True)


def gunicorn_wheels(cache_dir: Path) -> list[Path]:
    """gunicorn's wheels (pure Python), downloaded once on this machine (lab
    hosts fail to verify PyPI's certificate; the lab's wheelhouse has none)."""
    dest = cache_dir / "bench-wheels"
    if not list(dest.glob("gunicorn-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(dest),
                        GUNICORN], check=True, timeout=300)
    return sorted(dest.glob("*.whl"))


def install_gunicorn(lab, host: str, app: AppPaths) -> None:
    """gunicorn for the app's Python in BENCH_DIR/gunicorn (--target): the
    app's venv stays as the formula left it."""
    for wheel in gunicorn_wheels(lab.settings.cache_dir):
        docker.put_file(lab.container(host), f"{BENCH_DIR}/wheels/{wheel.name}", wheel.read_bytes())
    lab.exec(host, f"{app.venv}/bin/python -m pip install -q --disable-pip-version-check --no-index "
                   f"--find-links {BENCH_DIR}/wheels --target {BENCH_DIR}/gunicorn --upgrade {GUNICORN}",
             check=True, timeout=300)


def gunicorn_command(app: AppPaths) -> list[str]:
    """A transient unit (bounded to 2 h) running gunicorn with its defaults
    as the app's user, with the app's settings and env file."""
    return ["systemd-run", f"--unit={GUNICORN_UNIT}", f"--uid={app.user}", f"--gid={app.group}",
            f"--working-directory={app.src}", f"--setenv=DJANGO_ENV_FILE={app.env_file}",
            f"--setenv=DJANGO_SETTINGS_MODULE={app.settings_module}", f"--setenv=PYTHONPATH={BENCH_DIR}/gunicorn",
            "--property=RuntimeMaxSec=2h", f"{app.venv}/bin/python", "-m", "gunicorn",
            "--bind", GUNICORN_BIND, app.wsgi_module]


READY = ("import sys, urllib.request as u\n"
         "u.urlopen(u.Request(sys.argv[1], headers={'Host': sys.argv[2]}), timeout=5)\n")


@contextlib.contextmanager
def gunicorn_running(lab, host: str, app: AppPaths):
    lab.exec(host, f"systemctl stop {GUNICORN_UNIT}; systemctl reset-failed {GUNICORN_UNIT}; true")
    lab.exec(host, gunicorn_command(app), check=True)
    try:
        probe = shlex.join(["python3", "-c", READY, f"http://{GUNICORN_BIND}/healthz", webclient.SITE_HOST])
        ready = lab.exec(host, f"for i in $(seq 60); do {probe} 2>/dev/null && exit 0; sleep 0.5; done; exit 1")
        if ready.returncode != 0:
            log = lab.exec(host, f"journalctl -u {GUNICORN_UNIT} -n 40 --no-pager").stdout
            raise LabError(f"{host}: gunicorn does not answer /healthz on {GUNICORN_BIND}:\n{log}")
        yield
    finally:
        lab.exec(host, f"systemctl stop {GUNICORN_UNIT}")


def psql(lab, host: str, query: str) -> str:
    return lab.exec(host, ["runuser", "-u", "postgres", "--", "psql", "-d", "postgres", "-AtXc", query]).stdout.strip()


def patroni_leader(lab, members: list[str]) -> str:
    for host in members:
        if psql(lab, host, "SELECT pg_is_in_recovery()") == "f":
            return host
    raise LabError(f"no database member accepts writes: {members}")


def streaming_again(lab, members: list[str], timeout: float = 180) -> bool:
    """Every member but the leader streams from it again (within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(LabError, ValueError):
            leader = patroni_leader(lab, members)
            if int(psql(lab, leader, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")) \
                    == len(members) - 1:
                return True
        time.sleep(2)
    return False


# --- the groups -----------------------------------------------------------------

def convergence_rows(b: Bench) -> list[Row]:
    title = "no-op re-apply (orchestrate.deploy) vs the first ordered deploy"
    first = b.lab.run_orchestrate() if b.opts.first_deploy else None
    noops = [b.lab.run_orchestrate() for _ in range(b.opts.rounds)]
    rounds = [{"seconds": r.seconds, "changes": sum(r.changed.values())} for r in noops]
    stack = {"seconds": statistics.median(r["seconds"] for r in rounds), "changes": max(r["changes"] for r in rounds)}
    reference = {"seconds": first.seconds, "changes": sum(first.changed.values())} if first else {}
    note = "" if first else "first deploy not measured: ./lab up LAYOUT --fresh, then ./lab bench --first-deploy"
    row = timing_row("convergence", title, stack, reference, note)
    row.rounds = {"stack": rounds}
    return [row]


def static_rows(b: Bench) -> list[Row]:
    media = b.lab.topology.with_role("media")
    directory = f"{formula_defaults(b.lab.settings.repo, 'nginx')['media']['root']}/{b.opts.app}/static"
    for host in media:
        put_static_files(b.lab, host.id, directory)
    ensure_wrk(b.lab, b.lb)
    b.clients["static"] = b.lb
    direct = f"http://{media[0].address}:{registry_port(b.lab.topology.registry, 'media', 'media')}"
    note = f"the LB spreads over {len(media)} media hosts" if len(media) > 1 else ""
    return [b.compare(f"static-{size}", f"{size} static: LB (HTTPS) vs {media[0].id}'s nginx direct",
                      b.lb, f"/static/{static_name(size)}", direct, note) for size in STATIC_FILES]


def django_rows(b: Bench) -> list[Row]:
    host = b.lab.topology.with_role("app")[0].id
    apps = yaml.safe_load((b.lab.site_dir / "apps.sls").read_text())["apps"]
    app = app_paths(apps, formula_defaults(b.lab.settings.repo, "django"), b.opts.app)
    ensure_wrk(b.lab, host)
    install_gunicorn(b.lab, host, app)
    b.clients["django"] = host
    with gunicorn_running(b.lab, host, app):
        return [b.compare(page.id, f"{page.what}: LB -> uWSGI vs gunicorn defaults on {host}", host, page.path,
                          f"http://{GUNICORN_BIND}", headers=page.headers) for page in DJANGO_PAGES]


def sustained_rows(b: Bench) -> list[Row]:
    ensure_wrk(b.lab, b.lb)
    b.clients["sustained"] = b.lb
    seconds = b.opts.sustain
    return [load_row(f"sustained-{page.id}", f"{page.what}: {seconds} s through the LB",
                     [b.wrk(b.lb, b.site_url(page.path), seconds, f"sustained-{page.id}", page.headers)], [])
            for page in DJANGO_PAGES]


def replication_rows(b: Bench) -> list[Row]:
    title = "replication lag (replay_lag, every 0.1 s) under pgbench writes on the leader"
    if not b.lab.topology.with_role("dcs"):
        return [skipped_row("replication-lag", title, "no Patroni in this layout (no dcs hosts)")]
    leader = patroni_leader(b.lab, [h.id for h in b.lab.topology.with_role("database")])
    run = b.lab.exec(leader, pgbench_script(b.opts.sustain), check=True, timeout=b.opts.sustain + 600)
    b.save_raw("replication-pgbench", run.stdout + "\n--- sampler ---\n" + run.stderr)
    stack = {"tps": parse_pgbench_tps(run.stdout), **lag_figures(parse_lag_samples(run.stderr))}
    return [timing_row("replication-lag", title, stack, note=f"pgbench -c 8 for {b.opts.sustain} s on {leader}")]


def scale_out_rows(b: Bench) -> list[Row]:
    title = "a new app host: topology edit until the LB sends it requests"
    apps = [h.id for h in b.lab.topology.with_role("app")]
    if len(apps) < 2:
        return [skipped_row("scale-out", title, "needs two app hosts or more")]
    spare = apps[-1]
    b.lab.set_topology(without_role(b.lab.topology.text, spare, "app"))
    try:
        b.lab.run_orchestrate()
    except LabError as exc:
        raise LabError(f"{exc}\n(scale-out: the topology is restored; ./lab apply deploys it again)") from exc
    finally:
        b.lab.restore_topology()
    start = time.monotonic()
    deploy = b.lab.run_orchestrate()
    seconds = b.served_by(spare, start)
    note = f"{spare}'s app role retired first (packages removed; code and venv kept)"
    return [timing_row("scale-out", title, {"seconds": seconds, "orchestrate_s": deploy.seconds},
                       note=note if seconds is not None else note + "; NOT in rotation after 300 s")]


def failover_rows(b: Bench) -> list[Row]:
    title = "failover: the Patroni leader killed under writes through the LB"
    if not b.lab.topology.with_role("dcs"):
        return [skipped_row("failover", title, "no Patroni in this layout (no dcs hosts)")]
    members = [h.id for h in b.lab.topology.with_role("database")]
    leader = patroni_leader(b.lab, members)
    log, stop, start = [], threading.Event(), time.monotonic()
    writer = threading.Thread(target=b.write_loop, args=(log, stop, start), daemon=True)
    writer.start()
    time.sleep(5)
    b.lab.kill(leader)
    killed_at = time.monotonic() - start
    while time.monotonic() - start < killed_at + 90 and not writes_back(log, killed_at):
        time.sleep(0.5)
    stop.set()
    writer.join()
    b.lab.start(leader)
    rejoined = streaming_again(b.lab, members)
    failed = sum(not ok for t, ok in log if t > killed_at)
    stack = {"seconds": failover_seconds(log, killed_at), "failed_writes": failed}
    note = f"{leader} killed (SIGKILL)" + ("" if rejoined else f"; {leader} NOT streaming again after 180 s")
    return [timing_row("failover", title, stack, note=note)]


RUNNERS = {"convergence": convergence_rows, "static": static_rows, "django": django_rows,
           "sustained": sustained_rows, "replication": replication_rows, "scale-out": scale_out_rows,
           "failover": failover_rows}


def main(lab, opts: Options) -> int:
    if min(opts.rounds, opts.seconds, opts.sustain, opts.connections, opts.threads) < 1:
        raise LabError("--rounds, --seconds, --sustain, --connections and --threads must be 1 or more")
    if opts.first_deploy and "convergence" not in opts.only:
        raise LabError("--first-deploy measures the convergence row: keep it in --only")
    try:
        import matplotlib  # noqa: F401  (the PNG; checked before any load runs)
    except ImportError as exc:
        raise LabError("matplotlib is missing: ./lab installs requirements.txt into .venv") from exc
    bench = Bench(lab, opts)
    try:
        bench.run()
    finally:
        paths = bench.write()
        print(markdown_table(bench.rows))
        lab.progress(f"bench: results in {paths['markdown']}, {paths['json']}, {paths['png']}")
    return 0

"""three-tier: LB → two app hosts → database (+cache) host; a media host
(+ the backup repository)."""
import collections
import copy
import json
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time

import pytest
import yaml

import stack_checks as checks
import stackpillar
from stackpillar import connections, timeouts
from stacklab import bench, bench_results, containers, site
from stacklab.saltctl import STACK_ENV
from tests.layouts import REPO

pytestmark = pytest.mark.layout("three-tier")


GIT_PORT = 8088   # the lab master's plain HTTP server for a bare repository


def git_commit(bare, work, message):
    """Commit ``work`` as it is (an empty commit if nothing changed), push it
    to ``bare``'s main and let git's plain HTTP serve it: the new commit."""
    run = lambda *args: subprocess.run(["git", "-C", str(work), "-c", "user.name=lab", "-c",  # noqa: E731
                                        "user.email=lab@example.com", *args], check=True,
                                       capture_output=True, text=True).stdout.strip()
    run("add", "-A")
    run("commit", "-q", "--allow-empty", "-m", message)
    run("push", "-q", str(bare), "HEAD:main")
    subprocess.run(["git", "-C", str(bare), "update-server-info"], check=True)
    return run("rev-parse", "HEAD")


def git_demo_repository(bare, work):
    """A bare repository holding the demo app's source (examples/apps/demo)
    in one commit on main: that commit."""
    shutil.rmtree(bare.parent, ignore_errors=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    shutil.copytree(REPO / "examples" / "apps" / "demo", work,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    return git_commit(bare, work, "the demo app")


class HostReads(checks.Background):
    """GET /healthz through the load balancer every 0.1 s: which app host
    answered each (X-App-Host) and when, and every read that failed."""

    def __init__(self, address):
        super().__init__()
        self.address = address
        self.sent, self.answered, self.failures = 0, [], []

    def step(self):
        self.sent += 1
        try:
            got = checks.request(self.address, "/healthz", timeout=10)
            if got.status == 200:
                self.answered.append((self.elapsed(), got.header("x-app-host")))
            else:
                self.failures.append((self.elapsed(), got.status))
        except OSError as exc:
            self.failures.append((self.elapsed(), type(exc).__name__))


class TestThreeTier(checks.LayoutSuite):
    """Plus what three-tier shows best: one migrate, sustained load, a role moved."""

    def test_migrations_run_on_the_leader_only(self, lab, topology):
        """Only the first app host carries the migrate state; the schema is in place."""
        apps = checks.hosts_with(topology, "app")
        for app in apps:
            states = lab.salt(app, "state.show_sls", "django", f"saltenv={STACK_ENV}", f"pillarenv={STACK_ENV}")[app]
            assert ("django-demo-migrate" in states) == (app == apps[0]), app
        assert checks.sql(lab, topology, "SELECT count(*) FROM django_migrations WHERE app = 'visits'") == "1"

    def test_django_deploy_check_is_clean_behind_tls(self, lab, topology):
        app = checks.hosts_with(topology, "app")[0]
        run = lab.exec(app, "cd /srv/apps/demo/src && runuser -u demo -- env DJANGO_ENV_FILE=/etc/django-apps/demo.env"
                            " ../venv/bin/python manage.py check --deploy", check=True)
        output = run.stdout + run.stderr
        assert "System check identified no issues" in output, output
        assert not re.findall(r"security\.[WE]\d+", output), output

    def test_a_forced_certificate_renewal_under_load_fails_no_request(self, lab, topology, say):
        """certbot renews through the ACME server (the timer's own command,
        forced); its deploy hook swaps the certificate and reloads nginx."""
        lb = checks.hosts_with(topology, "loadbalancer")[0]
        root = checks.acme_root(lab)
        _, before, _ = checks.verified_certificate(lab, lb, root)
        with checks.Traffic(lab.address(lb)) as traffic:
            time.sleep(2)
            lab.exec(lb, "certbot renew --force-renewal --no-random-sleep-on-renew --cert-name demo", check=True,
                     timeout=300)
            time.sleep(2)
        _, after, _ = checks.verified_certificate(lab, lb, root)
        say(f"renewal under load: sent {traffic.sent}, failed {traffic.failed}; "
            f"serial {before} -> {after}")
        assert after != before
        assert traffic.sent > 10 and traffic.failed == 0, traffic.failures[:10]

    def test_the_firewall_applied_and_changed_from_the_master_cuts_no_connection(self, lab, topology,
                                                                                 lab_topology, say):
        """ssh connections from this machine (the layout's admin network)
        opened before, and the master's test.ping throughout, while every
        host's table is loaded from nothing, then changed, then changed back."""
        hosts = list(topology["hosts"])
        table = checks.formula_defaults("firewall")["table"]

        def apply_firewall():
            result = lab.salt("-L", ",".join(hosts), "state.apply", "firewall",
                              f"saltenv={STACK_ENV}", f"pillarenv={STACK_ENV}")
            failed = {h: [s["comment"] for s in r.values() if not s["result"]] for h, r in result.items()}
            assert not any(failed.values()), failed
            return {h: sum(bool(s["changes"]) for s in r.values()) for h, r in result.items()}

        wider = yaml.safe_load(yaml.safe_dump(topology))
        wider["admin_networks"] = wider["admin_networks"] + ["192.0.2.0/24"]
        ssh = {h: socket.create_connection((lab.address(h), 22), timeout=10) for h in hosts}
        try:
            banners = {h: conn.recv(256) for h, conn in ssh.items()}
            assert all(b.startswith(b"SSH-2.0-") for b in banners.values()), banners
            with checks.Pinger(lab, hosts) as pinger:
                for host in hosts:
                    lab.exec(host, ["nft", "delete", "table", "inet", table], check=True)
                loaded = apply_firewall()
                lab_topology(yaml.safe_dump({"topology": wider}))
                changed = apply_firewall()
                lab.restore_topology()
                restored = apply_firewall()
            # The connections opened before still carry an ssh key exchange.
            answers = {}
            for host, conn in ssh.items():
                conn.sendall(b"SSH-2.0-stacklab-firewall-check\r\n")
                answers[host] = conn.recv(4096)
        finally:
            for conn in ssh.values():
                conn.close()
        say(f"firewall loaded {loaded}, changed {changed}, changed back {restored} (states changed per host); "
            f"test.ping rounds {pinger.sent}, missed {len(pinger.missed)}; ssh connections alive "
            f"{sum(bool(a) for a in answers.values())} of {len(ssh)}")
        assert all(loaded.values()) and all(changed.values()) and all(restored.values())
        assert pinger.sent > 3 and not pinger.missed, pinger.missed
        assert all(b"curve25519" in a or b"diffie-hellman" in a or b"mlkem" in a for a in answers.values()), answers
        for host in hosts:
            assert "192.0.2.0/24" not in lab.exec(host, ["nft", "list", "table", "inet", table], check=True).stdout

    def test_jobs_reach_a_host_whose_connection_tracking_never_saw_the_minions_connections(self, lab, topology,
                                                                                           say):
        """On a real host the firewall's first load is what starts connection
        tracking, so the minion's connections to its master, opened before,
        are unknown to it (the lab's containers track from their start:
        Docker's DNS rules). Forgetting them here stands in for that: the
        master's next publish arrives as a new packet, and the table must
        still let it in (firewall:salt_master), or the minion misses every
        job until its TCP keepalive."""
        hosts = list(topology["hosts"])
        for host in hosts:   # the lab's tool, not the stack's
            lab.exec(host, "command -v conntrack >/dev/null || apt-get install -y -qq conntrack >/dev/null || "
                           "(apt-get update -qq && apt-get install -y -qq conntrack >/dev/null)", check=True, timeout=300)
        # The master's ports as each host's firewall has them.
        ports = {host: lab.pillar(host)["firewall"]["salt_master"]["ports"] for host in hosts}
        rounds, missed = 0, []
        for _ in range(3):
            for host in hosts:
                # Every tracked flow of the minion to Salt's ports, both directions.
                for port in ports[host]:
                    lab.exec(host, f"conntrack -D -p tcp --dport {port} >/dev/null 2>&1 || true")
            got = lab.salt("-L", ",".join(hosts), "test.ping", "--timeout=20")
            rounds += 1
            missed += [h for h in hosts if got.get(h) is not True]
        say(f"test.ping after the minions' connections were forgotten: rounds {rounds} x {len(hosts)} hosts, "
            f"missed {len(missed)} {missed}")
        assert rounds == 3 and not missed

    def test_the_plain_database_archives_to_the_repository_and_restores_from_it(self, lab, topology, say):
        """One PostgreSQL (no Patroni) archives through its own settings; a
        restore of the whole archive holds every row the live one has."""
        checks.wait_first_backup(lab, topology)
        database = checks.hosts_with(topology, "database")[0]
        live = checks.sql(lab, topology, "SELECT count(*) FROM visits_visit")
        checks.check_archiving(lab, topology)
        checks.restore_scratch(lab, database, "latest")
        try:
            restored = checks.scratch_sql(lab, database, "SELECT count(*) FROM visits_visit")
        finally:
            checks.drop_scratch(lab, database, "latest")
        say(f"rows on the live database {live}, in a restore of the whole archive {restored}")
        assert restored == live
        # The status view works without Patroni: the plain cluster, its backups.
        view = json.dumps(lab.salt_run("state.orchestrate", "orchestrate.database", f"saltenv={STACK_ENV}",
                                       f"pillarenv={STACK_ENV}"))
        assert re.search(r"\d+ +main +\d+ +online", view) and re.search(r"full backup: \d{8}-\d{6}F", view), view

    def test_sixty_seconds_of_load_through_the_lb_without_an_error(self, lab, topology, say):
        result = checks.sustained_load(lab, topology, seconds=60, say=say)
        assert result.requests > 0
        assert result.non_2xx == 0 and result.socket_errors == 0, result
        # Connections to memcached and Postgres are held, not opened per request.
        assert result.new_cache_connections < result.requests / 100, result
        assert result.database_connections <= result.database_connection_limit, result

    def test_the_benchmark_measures_static_and_django_rows_against_their_references(self, lab, topology,
                                                                                      tmp_path, say):
        """./lab bench's static and django groups, one short round each: every
        row has both sides measured with real traffic and no error, the files
        are written, and the static rows were answered from the LB's cache.
        The figures are printed, never asserted: they are the bench's to
        publish (README, Benchmarks), not a timed test's."""
        opts = bench.Options(rounds=1, seconds=2, only=("static", "django"), out=tmp_path / "bench")
        rows = bench.Bench(lab, opts).run()
        say(bench_results.markdown_table(rows))
        assert [r.id for r in rows] == [f"static-{size}" for size in bench.STATIC_FILES] + [
            page.id for page in bench.DJANGO_PAGES]
        for row in rows:
            for side in (row.stack, row.reference):
                assert side["requests"] > 0 and side["non_2xx"] == 0 and side["errors"] == 0, row
            assert row.ratio["rps"] > 0, row
        assert {p.name for p in opts.out.iterdir()} >= {"results.md", "results.json", "results.png"}
        lb = checks.hosts_with(topology, "loadbalancer")[0]
        for size in bench.STATIC_FILES:
            path = f"/static/{bench.static_name(size)}"
            assert checks.kept_by_lb(lab, lb, path), f"{path} not in {lb}'s {checks.STATIC_CACHE}"
        assert checks.kept_by_lb(lab, lb, "/recent", checks.PAGE_CACHE), f"/recent not in {lb}'s {checks.PAGE_CACHE}"

    def test_a_wrong_topology_stops_the_deploy_before_any_host_changes(self, lab, topology, lab_topology):
        wrong = yaml.safe_load(yaml.safe_dump(topology))
        wrong["hosts"]["app2"]["roles"] = ["app", "webserver"]
        lab_topology(yaml.safe_dump({"topology": wrong}))
        result = lab.run_orchestrate(check=False)
        assert not result.ok
        assert "topology:hosts:app2:roles: unknown role webserver" in " ".join(result.failures)
        assert result.changed == {host: 0 for host in lab.hosts}

    def test_secrets_are_on_disk_only_where_roles_use_them(self, lab, topology):
        """Not only the pillar: no file on a host without the app role holds
        the SECRET_KEY, none on a host without app or database holds the
        database password."""
        secret_key, db_password = checks.app_secrets(lab)
        for host_id, spec in topology["hosts"].items():
            roles = set(spec["roles"])
            if "app" not in roles:
                found = checks.files_holding(lab, host_id, secret_key)
                assert found == [], f"{host_id} holds the SECRET_KEY in {found}"
            if not roles & {"app", "database"}:
                found = checks.files_holding(lab, host_id, db_password)
                assert found == [], f"{host_id} holds the database password in {found}"

    def test_placeholder_secrets_stop_the_deploy_before_any_host_changes(self, lab, lab_secrets):
        """The example's secrets.sls copied as it is: the ordered deploy
        names the first placeholder a host needs (topology order: app1's
        SECRET_KEY) and changes nothing."""
        lab_secrets((REPO / "pillar" / "examples" / "secrets.sls.example").read_text())
        result = lab.run_orchestrate(check=False)
        assert not result.ok
        failures = " ".join(result.failures)
        assert "secrets:django:demo:secret_key: is the placeholder CHANGE-ME" in failures, failures
        assert "needed on app1" in failures and "secrets.token_urlsafe(50)" in failures, failures
        assert result.changed == {host: 0 for host in lab.hosts}

    def test_a_failed_step_stops_every_step_that_needs_it(self, lab, topology, say):
        """The media step fails on media1 (its writers' directory is a file);
        the app and load balancer steps, which need the media hosts, never
        report success, and the deploy fails naming the step. Once the
        directory is back, the next deploy converges with 0 changes."""
        media = checks.hosts_with(topology, "media")[0]
        saved = f"{checks.MEDIA_WRITERS}.drill-saved"
        lab.exec(media, f"mv {checks.MEDIA_WRITERS} {saved} && touch {checks.MEDIA_WRITERS}", check=True)
        try:
            result = lab.run_orchestrate(check=False)
        finally:
            lab.exec(media, f"rm -f {checks.MEDIA_WRITERS} && mv {saved} {checks.MEDIA_WRITERS}", check=True)
        outcome = {name: ok for name, ok, _comment in result.steps}
        needing_media = checks.steps_waiting_for(topology, "media")
        say(f"media step failed on {media}: steps {outcome}; failures: {result.failures[:3]}")
        assert not result.ok and outcome.get("media") is False, outcome
        assert needing_media, "no step waits for the media step"
        assert not any(outcome.get(name) for name in needing_media), outcome
        assert outcome.get("retire-and-minion-config") is not True, outcome
        again = lab.run_orchestrate()
        assert again.changed == {host: 0 for host in lab.hosts}, again.changed

    def test_a_host_that_drifted_is_back_after_a_reboot_without_a_push(self, lab, topology, say):
        """db1's memcached stopped and disabled, its managed config edited by
        hand; db1 reboots; its minion's own highstate at start (formula
        salt_minion) puts both back. Nothing is sent from the master."""
        host = checks.hosts_with(topology, "cache")[0]
        (service,) = checks.expected(lab.host(host), topology, "cache", "services")
        config = checks.formula_defaults("memcached")["config_file"]
        declared = lab.exec(host, f"sha256sum {config}", check=True).stdout
        lab.exec(host, f"systemctl disable --now {service} && echo '-m 8' >> {config}", check=True)
        assert lab.exec(host, f"sha256sum {config}").stdout != declared
        boot = lab.restart(host)
        say(f"{host} rebooted: its own highstate {boot['jid']}: {boot['states']} states, "
            f"{boot['changed']} changed, {boot['failed']} failed")
        assert boot["failed"] == 0, boot["failures"]
        assert boot["changed"] >= 2          # the file, the service
        assert lab.exec(host, f"sha256sum {config}").stdout == declared
        assert lab.host(host).service(service).is_running
        assert lab.host(host).service(service).is_enabled
        checks.wait_healthy(lab, topology)
        checks.check_site(lab, topology)

    def test_a_host_that_joins_by_booting_converges_then_gets_traffic_after_the_next_deploy(
            self, lab, topology, lab_topology, say):
        """app3, added to the topology, starts with its minion configuration
        (master and id, from `stackpillar minion-config`) and a key made and
        accepted on the master: its first boot converges it, no push; the
        next ordered deploy tells the load balancer, which then sends it
        requests."""
        address = checks.free_address(lab, topology)
        joined = yaml.safe_load(yaml.safe_dump(topology))
        joined["hosts"]["app3"] = {"address": address, "roles": ["app"]}
        lab_topology(yaml.safe_dump({"topology": joined}), joining=["app3"])
        try:
            boot = lab.join("app3", address)
            say(f"app3 joined at {address}: its first highstate {boot['jid']}: {boot['states']} states, "
                f"{boot['changed']} changed, {boot['failed']} failed")
            assert boot["failed"] == 0, boot["failures"]
            assert boot["changed"] > 0
            assert lab.host("app3").service("uwsgi-emperor").is_running
            lb = checks.hosts_with(topology, "loadbalancer")[0]
            before = collections.Counter(checks.request(lab.address(lb), "/healthz").header("x-app-host")
                                         for _ in range(20))
            deploy = lab.run_orchestrate()
            after = collections.Counter(checks.request(lab.address(lb), "/").header("x-app-host")
                                        for _ in range(30))
            say(f"requests served before the deploy {dict(before)}, after {dict(after)}; "
                f"the deploy changed {deploy.changed}")
            assert "app3" not in before
            assert after["app3"] > 0 and sum(after.values()) == 30
            assert deploy.changed.get("app3", 0) == 0   # it had converged itself
        finally:
            lab.leave("app3")

    def test_a_slow_endpoint_under_load_marks_no_healthy_app_host_down(self, lab, topology, say):
        """Requests to /slow that outlast harakiri, more than one per app
        host at once, while reads go through the load balancer: each slow
        one ends in about harakiri (one app host, never repeated on the
        next), no read fails, and every app host keeps answering reads
        after the kills (the app upstream counts no failures)."""
        lb = lab.address(checks.hosts_with(topology, "loadbalancer")[0])
        app_hosts = checks.hosts_with(topology, "app")
        limits = timeouts.app_timeouts(checks.APPS["demo"])
        slow = [None] * (2 * len(app_hosts) + 1)

        def slow_request(index):
            started = time.monotonic()
            try:
                got = checks.request(lb, f"/slow?seconds={limits['harakiri'] + 20}",
                                     timeout=limits["lb_read"] + 30)
                slow[index] = (got.status, round(time.monotonic() - started, 1))
            except OSError as exc:
                slow[index] = (type(exc).__name__, round(time.monotonic() - started, 1))

        with HostReads(lb) as reads:
            time.sleep(2)
            senders = [threading.Thread(target=slow_request, args=(i,)) for i in range(len(slow))]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            killed_at = reads.elapsed()
            # As long as a passive health check would keep a host out.
            time.sleep(15)
        after = collections.Counter(host for at, host in reads.answered if at > killed_at)
        say(f"slow endpoint: {len(slow)} requests past harakiri ({limits['harakiri']} s) -> {slow}; reads sent "
            f"{reads.sent}, failed {len(reads.failures)} {reads.failures[:5]}; answered per app host in the "
            f"15 s after the kills {dict(after)}")
        for status, seconds in slow:
            # A harakiri kill (502), once: a retry on the next host would take twice as long.
            assert status == 502 and limits["harakiri"] - 1 <= seconds < limits["lb_read"] + 5, slow
        assert reads.sent > 50 and reads.failures == [], reads.failures[:10]
        assert set(after) == set(app_hosts), after

    def test_a_code_change_rolls_out_one_app_host_at_a_time_without_a_failed_request(self, lab, topology, say):
        """A new module in the demo app's source (laid over salt://demo in
        the lab's own file root), deployed in order while reads of /healthz
        and writes and reads of the demo page go through the load balancer:
        0 failed, 0 non-2xx; the leader reloads first and each other app host
        only after the one before serves again; every app host then runs
        workers of the new code. Then the module goes again the same way."""
        lb = lab.address(checks.hosts_with(topology, "loadbalancer")[0])
        app_hosts = checks.hosts_with(topology, "app")
        module = lab.site_dir / site.SITE_STATE_DIR / "demo" / "visits" / "release.py"
        try:
            self._roll_out_twice(lab, lb, app_hosts, module, say)
        finally:
            module.unlink(missing_ok=True)

    def _roll_out_twice(self, lab, lb, app_hosts, module, say):
        for change in ("added", "removed"):
            if change == "added":
                module.parent.mkdir(parents=True, exist_ok=True)
                module.write_text(f"RELEASE = {time.time()!r}  # written by {__name__}\n")
            else:
                module.unlink()
            changed_at = time.time()
            with HostReads(lb) as reads, checks.Traffic(lb) as traffic:
                time.sleep(2)
                started = reads.elapsed()
                deploy = lab.run_orchestrate()
                ended = reads.elapsed()
                time.sleep(2)
            spawned = {h: checks.vassal_spawn_times(lab, h) for h in app_hosts}
            gaps = checks.longest_gaps(reads.answered, app_hosts, started, ended)
            say(f"code change ({change}) under load: deploy changed {deploy.changed}; /healthz reads sent "
                f"{reads.sent}, failed {len(reads.failures)} {reads.failures[:5]}; page writes and reads sent "
                f"{traffic.sent}, failed {traffic.failed} {traffic.failures[:5]}; longest time out of rotation "
                f"{ {h: round(g, 1) for h, g in gaps.items()} } s")
            assert reads.failures == [] and traffic.failed == 0
            assert reads.sent > 20 and traffic.sent > 20
            for host in app_hosts:
                present = lab.exec(host, ["test", "-e", "/srv/apps/demo/src/visits/release.py"]).returncode == 0
                assert present == (change == "added"), host
                assert min(spawned[host]) >= int(changed_at), (host, spawned[host], changed_at)
            # One host at a time, in topology order (the leader first).
            for before, after in zip(app_hosts, app_hosts[1:]):
                assert max(spawned[before]) <= min(spawned[after]), spawned
            assert all(deploy.changed.get(h, 0) > 0 for h in app_hosts), deploy.changed
        assert lab.highstate() == {host: 0 for host in lab.hosts}

    def drill(self, lab, topology, say, name, fault, recover):
        """``fault`` then ``recover`` while /healthz reads and demo page
        writes and reads go through the load balancer; prints the counts and
        returns both loads. Every app host answers reads again afterwards."""
        lb = lab.address(checks.hosts_with(topology, "loadbalancer")[0])
        with HostReads(lb) as reads, checks.Traffic(lb) as traffic:
            time.sleep(2)
            fault()
            time.sleep(5)
            recover()
            checks.wait_healthy(lab, topology, timeout=120)
            time.sleep(5)
        back = checks.wait_every_app_host_healthy(lab, topology)
        writes = [f for f in traffic.failures if f[1] == "write"]
        say(f"drill {name}: /healthz reads sent {reads.sent}, failed {len(reads.failures)} {reads.failures[:5]}; "
            f"page writes and reads sent {traffic.sent}, failed {traffic.failed} (writes {len(writes)}) "
            f"{traffic.failures[:5]}; lost 0 of {len(traffic.acked)} acknowledged writes: "
            f"{checks.missing_visits(lab, topology, traffic.acked)}; /healthz 200s per app host after {back}")
        assert checks.missing_visits(lab, topology, traffic.acked) == []
        assert set(back) == set(checks.hosts_with(topology, "app")), back
        return reads, traffic

    def test_drill_uwsgi_killed_on_one_app_host(self, lab, topology, say):
        """systemd brings the emperor back (Restart=always). A read in flight
        is retried on the other app host; a write in flight when its worker
        died is never resent (nginx does not repeat a POST): at most one
        write fails, reported as such."""
        app = checks.hosts_with(topology, "app")[-1]
        reads, traffic = self.drill(lab, topology, say, f"uwsgi killed on {app}",
                                    lambda: lab.exec(app, "systemctl kill -s KILL uwsgi-emperor", check=True),
                                    # systemd's own restart, not ours: wait for it.
                                    lambda: lab.exec(app, "for i in $(seq 60); do systemctl is-active -q "
                                                          "uwsgi-emperor && exit 0; sleep 1; done; exit 1",
                                                     check=True))
        assert reads.failures == []
        assert all(kind == "write" for _, kind, _ in traffic.failures) and traffic.failed <= 1, traffic.failures

    def test_drill_an_app_host_powered_off(self, lab, topology, say):
        """docker kill (a power cut), then start: its minion's own highstate
        at boot; meanwhile the load balancer's connects to it time out and go
        to the other app host."""
        app = checks.hosts_with(topology, "app")[-1]
        reads, traffic = self.drill(lab, topology, say, f"{app} powered off",
                                    lambda: lab.kill(app), lambda: lab.start(app))
        assert reads.failures == []
        assert all(kind == "write" for _, kind, _ in traffic.failures) and traffic.failed <= 1, traffic.failures

    def test_drill_memcached_stopped(self, lab, topology, say):
        """The site answers with cache misses only (sessions fall back to the
        database); /healthz says the cache is down meanwhile, so only the page
        load must stay clean."""
        cache = checks.hosts_with(topology, "cache")[0]
        misses = []

        def stop():
            lab.exec(cache, "systemctl stop memcached", check=True)
            got = checks.request(lab.address(checks.hosts_with(topology, "loadbalancer")[0]), "/")
            misses.append(got.status)

        _reads, traffic = self.drill(lab, topology, say, "memcached stopped", stop,
                                     lambda: lab.exec(cache, "systemctl start memcached", check=True))
        assert misses == [200] and traffic.failed == 0, traffic.failures

    def test_every_host_restarted_comes_back_serving_without_a_push(self, lab, topology, say):
        """Every topology host rebooted at once (systemd stops them cleanly):
        each one's minion runs its own highstate at start; every role's
        services come back running and enabled, and the site passes its
        checks. Nothing is sent from the master."""
        hosts = list(topology["hosts"])
        runs = dict(containers.parallel(lambda h: (h, lab.restart(h)), hosts, workers=len(hosts)))
        say("every host restarted: " + "; ".join(
            f"{h} {r['states']} states, {r['changed']} changed, {r['failed']} failed" if r else f"{h} no highstate"
            for h, r in runs.items()))
        checks.wait_healthy(lab, topology, timeout=180)
        for host, spec in topology["hosts"].items():
            testinfra = lab.host(host)
            for role in spec["roles"]:
                for service in checks.expected(testinfra, topology, role, "services"):
                    unit = testinfra.service(service)
                    assert unit.is_running and unit.is_enabled, (host, service)
        checks.check_site(lab, topology)

    def test_a_branch_that_moves_during_a_deploy_reaches_no_app_host_before_the_next(self, lab, topology, say):
        """The demo app served from git (a bare repository on the master,
        over git's plain HTTP), rev: main. The branch moves while the first
        deploy runs, right after the leader checked it out and before any
        other app host did: every app host still gets the commit the leader
        migrated. The next deploy brings every host the new one."""
        url = f"http://{lab.address('salt')}:{GIT_PORT}/demo.git"
        bare = lab.site_dir / "git" / "demo.git"
        work = lab.site_dir / "git" / "work"
        apps_path = lab.site_dir / "apps.sls"
        saved = apps_path.read_text()
        app_hosts = checks.hosts_with(topology, "app")
        head = "git -C /srv/apps/demo/src rev-parse HEAD"
        try:
            first = git_demo_repository(bare, work)
            # A master that resolves branches needs git (README); the lab's has none yet.
            containers.use_apt_proxy(lab.container("salt"), lab.proxy_address)
            lab.exec("salt", "command -v git || { apt-get -q update && apt-get -qy install git; } >/dev/null",
                     check=True, timeout=600)
            lab.exec("salt", f"setsid -f /opt/salt/bin/python3 -m http.server {GIT_PORT} --bind "
                             f"{lab.address('salt')} --directory {site.SITE_MOUNT}/git >/dev/null 2>&1", check=True)
            apps = yaml.safe_load(saved)
            apps["apps"]["demo"]["source"] = {"git": url, "rev": "main"}
            apps_path.write_text(yaml.safe_dump(apps, sort_keys=False))
            moved = {}

            def move_when_the_leader_has(commit):
                deadline = time.monotonic() + 900
                while time.monotonic() < deadline and not moved:
                    if lab.exec(app_hosts[0], head).stdout.strip() == commit:
                        moved["to"] = git_commit(bare, work, "the branch moves")
                        moved["at"] = {h: lab.exec(h, head).stdout.strip() for h in app_hosts}
                        return
                    time.sleep(0.5)

            mover = threading.Thread(target=move_when_the_leader_has, args=(first,))
            mover.start()
            lab.run_orchestrate()
            mover.join()
            after_first = {h: lab.exec(h, head).stdout.strip() for h in app_hosts}
            lab.run_orchestrate()
            after_second = {h: lab.exec(h, head).stdout.strip() for h in app_hosts}
            say(f"git source, rev main: first deploy pinned {first[:12]}; the branch moved to "
                f"{moved.get('to', '?')[:12]} while the hosts had {moved.get('at')}; after it "
                f"{ {h: c[:12] for h, c in after_first.items()} }; after the next deploy "
                f"{ {h: c[:12] for h, c in after_second.items()} }")
            assert moved and all(c != first for h, c in moved["at"].items() if h != app_hosts[0]), moved
            assert set(after_first.values()) == {first}
            assert set(after_second.values()) == {moved["to"]}
            checks.check_site(lab, topology)
        finally:
            apps_path.write_text(saved)
            lab.exec("salt", f"pkill -f 'http.server {GIT_PORT}'")
            lab.run_orchestrate()

    def test_an_error_mails_the_admins_through_the_apps_relay(self, lab, topology, say):
        """The lab's apps mail through a relay on the master (stacklab's
        site pillar); here an SMTP sink (aiosmtpd, from Debian) listens there:
        a request that fails (a query the statement timeout cancels: a 500)
        mails the app's admins, from the app host."""
        relay = lab.address("salt")
        mail = lab.pillar(checks.hosts_with(topology, "app")[0])["django"]["apps"]["demo"]["mail"]
        assert (mail["host"], mail["port"]) == (relay, site.MAIL_RELAY_PORT), mail
        admin = mail["admins"][0][1]
        maildir = "/var/tmp/stacklab-mail"
        lb = lab.address(checks.hosts_with(topology, "loadbalancer")[0])
        limits = timeouts.app_timeouts(checks.APPS["demo"])
        try:
            containers.use_apt_proxy(lab.container("salt"), lab.proxy_address)
            lab.exec("salt", "dpkg -s python3-aiosmtpd >/dev/null 2>&1 || { apt-get -q update && "
                             "apt-get -qy install python3-aiosmtpd; } >/dev/null", check=True, timeout=600)
            lab.exec("salt", f"rm -rf {maildir}; setsid -f python3 -m aiosmtpd -n -l {relay}:{site.MAIL_RELAY_PORT} "
                             f"-c aiosmtpd.handlers.Mailbox {maildir} >/dev/null 2>&1", check=True)
            started = time.monotonic()
            got = checks.request(lb, f"/slow?seconds={limits['harakiri'] + 20}&in=database",
                                 timeout=limits["lb_read"] + 30)
            mails = []
            deadline = time.monotonic() + 30
            while not mails and time.monotonic() < deadline:
                found = lab.exec("salt", f"grep -l {shlex.quote(admin)} {maildir}/new/* 2>/dev/null")
                mails = found.stdout.split()
                time.sleep(1)
            text = lab.exec("salt", ["cat", mails[0]], check=True).stdout if mails else ""
            subject = next((line for line in text.splitlines() if line.startswith("Subject:")), "")
            say(f"error mail: the request answered {got.status} after {time.monotonic() - started:.1f} s; mails at "
                f"the relay {len(mails)}: {subject!r}")
            assert got.status == 500
            assert len(mails) == 1 and "ERROR" in subject and "/slow" in subject, text[:1000]
        finally:
            lab.exec("salt", f"pkill -f 'aiosmtpd -n -l {relay}:{site.MAIL_RELAY_PORT}'")

    def test_a_query_slower_than_the_statement_timeout_is_cancelled_by_the_database(self, lab, topology, say):
        """The database cancels the query before harakiri would kill the
        worker: the view answers 500 in about the statement timeout, and no
        abandoned query runs on."""
        lb = lab.address(checks.hosts_with(topology, "loadbalancer")[0])
        limits = timeouts.app_timeouts(checks.APPS["demo"])
        started = time.monotonic()
        got = checks.request(lb, f"/slow?seconds={limits['harakiri'] + 20}&in=database",
                             timeout=limits["lb_read"] + 30)
        seconds = round(time.monotonic() - started, 1)
        running = checks.sql(lab, topology, "SELECT count(*) FROM pg_stat_activity "
                                            "WHERE query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid()")
        say(f"a query of {limits['harakiri'] + 20} s: {got.status} after {seconds} s (statement timeout "
            f"{limits['statement']} s, harakiri {limits['harakiri']} s); pg_sleep still running: {running}")
        assert got.status == 500
        assert limits["statement"] - 1 <= seconds < limits["harakiri"], seconds
        assert running == "0"

    def test_max_connections_fits_every_app_worker(self, lab, topology, say):
        """What PostgreSQL runs with is what the pillar derived, and it
        holds every worker thread's connection plus the headroom."""
        apps = stackpillar.check_apps({"apps": copy.deepcopy(checks.APPS)})
        derived = connections.max_connections(topology, apps, checks.REGISTRY)
        running = int(checks.sql(lab, topology, "SHOW max_connections"))
        workers = sum(checks.vassal_workers(lab, h) for h in checks.hosts_with(topology, "app"))
        say(f"max_connections {running} (derived {derived}); app worker threads {workers}, "
            f"headroom {connections.MAINTENANCE_HEADROOM}")
        assert running == derived
        assert running >= workers + connections.MAINTENANCE_HEADROOM

    def test_moving_roles_is_a_pillar_change(self, lab, topology, lab_topology):
        """The cache leaves db1 for app2, whose app role moves to media1; the
        backup role leaves media1 (its backups stay on disk)."""
        moved = yaml.safe_load(yaml.safe_dump(topology))
        moved["hosts"]["db1"]["roles"] = ["database"]
        moved["hosts"]["app2"]["roles"] = ["cache"]
        moved["hosts"]["media1"]["roles"] = ["media", "app"]
        lab_topology(yaml.safe_dump({"topology": moved}))
        lab.run_orchestrate()
        checks.check_roles_exactly(lab, moved)
        checks.wait_healthy(lab, moved)
        checks.check_site(lab, moved)
        media = lab.host("media1")
        for timer in checks.expected(media, topology, "backup", "services"):
            assert not media.service(timer).is_running, timer
            assert not media.file(f"/etc/systemd/system/{timer}").exists, timer
        assert media.file(f"{checks.PGBACKREST['repo_path']}/backup/{checks.BACKUP_STANZA}/backup.info").exists
        assert checks.sql_on(lab, "db1", "SHOW archive_command", "postgres") == "/bin/true"
        assert lab.highstate() == {host: 0 for host in lab.hosts}
        # The app role left app2 and its secrets with it (django.clean).
        secret_key, db_password = checks.app_secrets(lab)
        left = checks.files_holding(lab, "app2", secret_key, db_password)
        assert left == [], f"app2 still holds the app's secrets in {left}"
        # Hosts that never had the app or database role never held the password.
        for host_id in lab.hosts:
            held = set(topology["hosts"][host_id]["roles"]) | set(moved["hosts"][host_id]["roles"])
            if not held & {"app", "database"}:
                found = checks.files_holding(lab, host_id, db_password)
                assert found == [], f"{host_id} holds the database password in {found}"

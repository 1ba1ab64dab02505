"""Operations (issue 11): timeouts that agree, connections that fit, error
mail that arrives. The pillar of every example layout, the refusals (each
naming the key and the host), and the files the formulas render from it:
the load balancer's site, the vassal ini, the app's env file."""
import copy

import pytest
import salt.client
import yaml

import stackpillar
from stackpillar import connections, timeouts
from tests.fast.conftest import SECRETS, arg
from tests.layouts import EXAMPLE_APPS, LAYOUTS, REGISTRY, hosts_with, load_layout


def example_apps():
    return yaml.safe_load(EXAMPLE_APPS.read_text())


def use_apps(renderer, change):
    apps = example_apps()
    change(apps["apps"]["demo"])
    renderer.write("apps.sls", yaml.safe_dump(apps))


def pillar_of(renderer, layout, host):
    renderer.use_layout(layout)
    pillar = renderer.pillar(host, load_layout(layout)["hosts"][host]["address"])
    assert "_errors" not in pillar, pillar["_errors"]
    return pillar


def errors_of(renderer, host, address):
    return " ".join(renderer.pillar(host, address).get("_errors", []))


class Rendered:
    """A host's highstate and the files its states render, through Salt."""

    def __init__(self, renderer, layout, host):
        self.caller = salt.client.Caller(mopts=renderer.opts(host, load_layout(layout)["hosts"][host]["address"]))
        self.highstate = self.caller.cmd("state.show_highstate")

    def file(self, state, source, **extra):
        context = {**arg(self.highstate[state], "context"), **extra}
        return self.caller.cmd("slsutil.renderer", path=source, default_renderer="jinja", saltenv="stack",
                               **context)


# -- Timeouts that agree -------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_orders_statement_timeout_below_harakiri_below_the_lbs_read_timeout(renderer, layout):
    topology = load_layout(layout)
    renderer.use_layout(layout)
    for host in hosts_with(topology, "app"):
        app = pillar_of(renderer, layout, host)["django"]["apps"]["demo"]
        assert app["database"]["statement_timeout"] == 25
        assert app["uwsgi"]["harakiri"] == app["uwsgi"]["worker-reload-mercy"] == 30
    for host in hosts_with(topology, "loadbalancer"):
        site = pillar_of(renderer, layout, host)["nginx"]["loadbalancer"]["sites"]["demo"]
        assert (site["app_read_timeout"], site["app_next_upstream_timeout"]) == ("35s", "5s")


def test_one_request_timeout_moves_every_figure(renderer):
    use_apps(renderer, lambda app: app.update(request_timeout=120))
    app = pillar_of(renderer, "three-tier", "app2")["django"]["apps"]["demo"]
    assert (app["database"]["statement_timeout"], app["uwsgi"]["harakiri"]) == (115, 120)
    site = pillar_of(renderer, "three-tier", "lb1")["nginx"]["loadbalancer"]["sites"]["demo"]
    assert (site["app_read_timeout"], site["app_next_upstream_timeout"]) == ("125s", "5s")


def test_the_derivation_keeps_its_order_over_the_whole_range():
    for request in (timeouts.REQUEST_TIMEOUT_MIN, timeouts.REQUEST_TIMEOUT, timeouts.REQUEST_TIMEOUT_MAX):
        t = timeouts.app_timeouts({"request_timeout": request})
        assert 0 < t["lb_retry_window"] < t["harakiri"]
        assert 0 < t["statement"] < t["harakiri"] == t["reload_mercy"] < t["lb_read"]


@pytest.mark.parametrize("value, key, words", [
    (5, "apps:demo:request_timeout", "between 10 and 3600"),
    ("30", "apps:demo:request_timeout", "whole seconds"),
    ({"DJANGO_DB_STATEMENT_TIMEOUT": 40}, "apps:demo:environment:DJANGO_DB_STATEMENT_TIMEOUT", "below the app's harakiri, 30 s"),
    ({"DJANGO_DB_STATEMENT_TIMEOUT": "0"}, "apps:demo:environment:DJANGO_DB_STATEMENT_TIMEOUT", "above 0"),
])
def test_timeouts_that_disagree_are_refused_naming_the_key_and_the_hosts(renderer, value, key, words):
    field = "environment" if isinstance(value, dict) else "request_timeout"
    use_apps(renderer, lambda app: app.update({field: value}))
    renderer.use_layout("three-tier")
    errors = errors_of(renderer, "lb1", "10.77.0.10")
    assert f"pillar {key}: " in errors and words in errors, errors
    if field == "environment":
        assert "on app1, app2" in errors, errors


def test_a_shorter_statement_timeout_is_the_apps_choice(renderer):
    use_apps(renderer, lambda app: app.update(environment={"DJANGO_DB_STATEMENT_TIMEOUT": 5}))
    assert "environment" in pillar_of(renderer, "three-tier", "app1")["django"]["apps"]["demo"]


def test_the_load_balancer_retries_early_errors_once_and_counts_no_app_failures(renderer):
    renderer.use_layout("scaled")
    lb = Rendered(renderer, "scaled", "lb-01.example.internal")
    text = lb.file("nginx-loadbalancer-site", "salt://nginx/files/loadbalancer.conf.jinja")
    app_upstream = text[text.index("upstream lb_demo_app"):]
    app_upstream = app_upstream[:app_upstream.index("}")]
    servers = [line.strip() for line in app_upstream.splitlines() if line.strip().startswith("server ")]
    assert servers == [f"server 10.77.0.{n}:8000 max_fails=0;" for n in (11, 12, 13)]
    media_upstream = text[text.index("upstream lb_demo_media"):]
    assert "max_fails=3 fail_timeout=10s" in media_upstream[:media_upstream.index("}")]
    app = text[text.index("uwsgi_pass lb_demo_app"):]
    app = app[:app.index("}")]
    directives = {line.split()[0]: line.split(None, 1)[1].rstrip(";") for line in app.splitlines()
                  if line.strip() and not line.strip().startswith("#")}
    # A connect that timed out is retried, within the retry window only.
    assert directives["uwsgi_next_upstream"] == "error timeout"
    assert directives["uwsgi_next_upstream_tries"] == "2"
    assert directives["uwsgi_next_upstream_timeout"] == "5s"
    assert directives["uwsgi_read_timeout"] == "35s"
    assert directives["uwsgi_connect_timeout"] == "1s"


def test_the_vassal_and_the_env_file_carry_the_derived_figures(renderer):
    renderer.use_layout("three-tier")
    app1 = Rendered(renderer, "three-tier", "app1")
    ini = app1.file("uwsgi-vassal-demo", "salt://uwsgi/files/vassal.ini.jinja")
    lines = set(ini.splitlines())
    assert {"harakiri = 30", "worker-reload-mercy = 30", "processes = 8", "threads = 1"} <= lines, ini
    env = app1.file("django-demo-env-file", "salt://django/files/app.env.jinja")
    assert "DJANGO_DB_STATEMENT_TIMEOUT=25" in env.splitlines()
    # Migrations may run longer than any request.
    migrate_env = arg(app1.highstate["django-demo-migrate"], "env")
    assert migrate_env["DJANGO_DB_STATEMENT_TIMEOUT"] == "0"


# -- Connections that fit ------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layouts_database_fits_every_app_worker_plus_headroom(renderer, layout):
    topology = load_layout(layout)
    apps = stackpillar.check_apps(example_apps())
    per_thread = 2 if len(hosts_with(topology, "database")) > 1 else 1
    workers = sum(8 * 1 * per_thread for _ in hosts_with(topology, "app"))
    for host in hosts_with(topology, "database"):
        postgres = pillar_of(renderer, layout, host)["postgres"]
        assert postgres["max_connections"] == max(100, workers + connections.MAINTENANCE_HEADROOM)
        assert postgres["max_connections"] >= connections.needed_connections(topology, apps, REGISTRY)


def test_app_hosts_always_say_how_many_workers_they_run(renderer):
    """Never uWSGI's per-CPU default, which the pillar could not count."""
    topology = load_layout("scaled")
    for host in hosts_with(topology, "app"):
        uwsgi = pillar_of(renderer, "scaled", host)["django"]["apps"]["demo"]["uwsgi"]
        assert (uwsgi["processes"], uwsgi["threads"]) == (8, 1)


def big_app_hosts(topology, processes=16, threads=4):
    for host in hosts_with(topology, "app"):
        topology["hosts"][host]["options"] = {"app": {"processes": processes, "threads": threads}}
    return topology


def test_the_default_grows_with_the_workers(renderer):
    renderer.use_topology(big_app_hosts(copy.deepcopy(load_layout("scaled"))))
    postgres = renderer.pillar("db-01.example.internal", "10.77.0.20")["postgres"]
    assert postgres["max_connections"] == 3 * 16 * 4 + 20


def test_a_max_connections_below_the_workers_is_refused_naming_the_numbers_to_change(renderer):
    topology = big_app_hosts(copy.deepcopy(load_layout("scaled")))
    topology["hosts"]["db-01.example.internal"]["options"] = {"database": {"max_connections": 100}}
    renderer.use_topology(topology)
    errors = errors_of(renderer, "app-02.example.internal", "10.77.0.12")
    assert "pillar topology:hosts:db-01.example.internal:options:database:max_connections: 100 is below " \
           "the 212 connections" in errors, errors
    assert "app-01.example.internal demo: 16 processes x 4 threads = 64" in errors
    assert "raise it to at least 212" in errors
    assert "topology:hosts:<host>:options:app:processes or threads on app-01.example.internal, " \
           "app-02.example.internal, app-03.example.internal" in errors


def test_replicas_double_each_threads_connections_unless_the_app_reads_from_the_leader_only(renderer):
    topology = big_app_hosts(copy.deepcopy(load_layout("replicated")), processes=8, threads=4)
    topology["hosts"]["db1"]["options"] = {"database": {"max_connections": 70}}
    for member in ("db2", "db3"):
        topology["hosts"][member]["options"] = {"database": {"max_connections": 70}}
    renderer.use_topology(topology)
    errors = errors_of(renderer, "db2", topology["hosts"]["db2"]["address"])
    assert "topology:hosts:db1:options:database:max_connections: 70 is below the 84" in errors, errors
    assert "8 processes x 4 threads x 2 (default and replica) = 64" in errors
    use_apps(renderer, lambda app: app.update(environment={"DJANGO_DB_READ_REPLICAS": "false"}))
    assert renderer.pillar("db2", topology["hosts"]["db2"]["address"])["postgres"]["max_connections"] == 70


# -- Error mail that arrives ---------------------------------------------------

def test_the_relay_and_its_password_reach_the_app_hosts_only(renderer):
    password = SECRETS["secrets"]["mail"]["demo"]
    topology = load_layout("three-tier")
    for host, spec in topology["hosts"].items():
        pillar = pillar_of(renderer, "three-tier", host)
        assert (password in repr(pillar)) == ("app" in spec["roles"]), host
    app1 = Rendered(renderer, "three-tier", "app1")
    env = dict(line.split("=", 1) for line in
               app1.file("django-demo-env-file", "salt://django/files/app.env.jinja").splitlines()
               if "=" in line and not line.startswith("#"))
    assert {k: env[k] for k in env if "EMAIL" in k or k == "DJANGO_ADMINS"} == {
        "DJANGO_EMAIL_HOST": "smtp.example.com", "DJANGO_EMAIL_PORT": "587", "DJANGO_EMAIL_TLS": "starttls",
        "DJANGO_EMAIL_USER": "demo@example.com", "DJANGO_EMAIL_PASSWORD": password,
        "DJANGO_SERVER_EMAIL": "demo@example.com", "DJANGO_ADMINS": '[["Ops", "ops@example.com"]]'}


def test_no_mail_writes_no_relay_and_no_admins(renderer):
    use_apps(renderer, lambda app: app.update(mail=False))
    renderer.use_layout("single")
    web1 = Rendered(renderer, "single", "web1")
    env = web1.file("django-demo-env-file", "salt://django/files/app.env.jinja")
    assert "EMAIL" not in env and "DJANGO_ADMINS" not in env, env
    # No relay, no password needed.
    secrets = copy.deepcopy(SECRETS)
    del secrets["secrets"]["mail"]
    renderer.write_secrets(secrets)
    assert "_errors" not in renderer.pillar("web1", "10.77.0.10")


def test_a_relay_without_a_login_needs_no_password(renderer):
    use_apps(renderer, lambda app: app.update(mail={"host": "10.77.0.50", "tls": "none", "from": "app@example.com",
                                                    "admins": [["Ops", "ops@example.com"]]}))
    secrets = copy.deepcopy(SECRETS)
    del secrets["secrets"]["mail"]
    renderer.write_secrets(secrets)
    mail = pillar_of(renderer, "three-tier", "app1")["django"]["apps"]["demo"]["mail"]
    assert (mail["port"], mail["user"], mail["password"]) == (25, None, None)


def without_mail(app):
    del app["mail"]


@pytest.mark.parametrize("change, key, words", [
    (without_mail, "apps:demo:mail", "missing: give an SMTP relay"),
    (lambda app: app.update(mail=True), "apps:demo:mail", "or false for no mail"),
    (lambda app: app.update(admins=[["Ops", "ops@example.com"]]), "apps:demo:admins", "moved to apps:<app>:mail:admins"),
    (lambda app: app["mail"].update(tls="none"), "apps:demo:mail:tls", "password in clear"),
    (lambda app: app["mail"].update(tls="tls"), "apps:demo:mail:tls", "one of starttls, ssl, none"),
    (lambda app: app["mail"].pop("host"), "apps:demo:mail:host", "host name or address"),
    (lambda app: app["mail"].pop("from"), "apps:demo:mail:from", "sender's address"),
    (lambda app: app["mail"].update(admins=["ops@example.com"]), "apps:demo:mail:admins", "[name, address]"),
    (lambda app: app["mail"].update(admins=[]), "apps:demo:mail:admins", "mail: false"),
    (lambda app: app["mail"].update(port=0), "apps:demo:mail:port", "between 1 and 65535"),
    (lambda app: app["mail"].update(password="x"), "apps:demo:mail:password", "unknown key"),
])
def test_a_wrong_or_missing_mail_setting_is_refused_naming_the_key(renderer, change, key, words):
    use_apps(renderer, change)
    renderer.use_layout("three-tier")
    errors = errors_of(renderer, "db1", "10.77.0.20")
    assert f"pillar {key}: " in errors and words in errors, errors


def test_the_relays_password_missing_is_refused_naming_the_app_host(renderer):
    secrets = copy.deepcopy(SECRETS)
    del secrets["secrets"]["mail"]
    renderer.write_secrets(secrets)
    renderer.use_layout("three-tier")
    errors = errors_of(renderer, "app1", "10.77.0.11")
    assert "pillar secrets:mail:demo: missing (needed on app1" in errors, errors
    # Other hosts never need it.
    assert "_errors" not in renderer.pillar("db1", "10.77.0.20")


def test_a_registry_default_outside_its_range_is_refused(tmp_path):
    registry = copy.deepcopy(REGISTRY)
    registry["roles"]["app"]["options"]["processes"]["default"] = 0
    path = tmp_path / "roles.yaml"
    path.write_text(yaml.safe_dump(registry))
    with pytest.raises(stackpillar.TopologyError, match="roles:app:options:processes:default"):
        stackpillar.load_registry(str(path))

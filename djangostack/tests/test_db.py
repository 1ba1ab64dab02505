"""Several database hosts (djangostack/README.md, "Several database hosts"):
the settings djangostack.settings makes of a host list, and the router and
middleware of djangostack.db. Each case runs in a fresh interpreter, as
uWSGI does, so its settings are its own."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

REQUIRED = {
    "DJANGO_SECRET_KEY": "k",
    "DJANGO_DB_NAME": "demo",
    "DJANGO_DB_USER": "demo",
}
STOCK_MIDDLEWARE_FIRST = "django.middleware.security.SecurityMiddleware"

SETTINGS_PROBE = """
import json
from djangostack import settings as s
print(json.dumps({"DATABASES": s.DATABASES, "ROUTERS": getattr(s, "DATABASE_ROUTERS", None),
                  "MIDDLEWARE": s.MIDDLEWARE}))
"""


def run(tmp_path, values, code):
    path = tmp_path / "app.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in {**REQUIRED, **values}.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["DJANGO_ENV_FILE"] = str(path)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def settings_from(tmp_path, values):
    proc = run(tmp_path, values, SETTINGS_PROBE)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_one_host_is_the_plain_single_database(tmp_path):
    s = settings_from(tmp_path, {"DJANGO_DB_HOST": "10.0.0.5", "DJANGO_DB_PORT": "5433"})
    assert list(s["DATABASES"]) == ["default"]
    db = s["DATABASES"]["default"]
    assert (db["HOST"], db["PORT"]) == ("10.0.0.5", 5433)
    assert db["OPTIONS"] == {"connect_timeout": 5, "sslmode": "prefer"}
    assert db["CONN_HEALTH_CHECKS"] is True
    assert s["ROUTERS"] is None
    assert s["MIDDLEWARE"][0] == STOCK_MIDDLEWARE_FIRST


def test_several_hosts_the_leader_for_writes_a_standby_for_reads(tmp_path):
    import psycopg

    s = settings_from(tmp_path, {"DJANGO_DB_HOST": "10.0.0.5, 10.0.0.6,10.0.0.7", "DJANGO_DB_PORT": "5432"})
    default, replica = s["DATABASES"]["default"], s["DATABASES"]["replica"]
    assert default["HOST"] == replica["HOST"] == "10.0.0.5,10.0.0.6,10.0.0.7"
    assert default["PORT"] == replica["PORT"] == 5432
    assert default["OPTIONS"]["target_session_attrs"] == "read-write"
    assert replica["OPTIONS"]["target_session_attrs"] == "prefer-standby"
    # A dead member costs each new connection this long before the next is tried.
    assert default["OPTIONS"]["connect_timeout"] == replica["OPTIONS"]["connect_timeout"] == 2
    assert replica["TEST"] == {"MIRROR": "default"}
    assert ("load_balance_hosts" in replica["OPTIONS"]) == (psycopg.pq.version() >= 160000)
    assert "load_balance_hosts" not in default["OPTIONS"]
    # Both replace a connection a failover broke before reusing it.
    assert default["CONN_HEALTH_CHECKS"] is replica["CONN_HEALTH_CHECKS"] is True
    assert (replica["NAME"], replica["USER"]) == (default["NAME"], default["USER"])
    assert s["ROUTERS"] == ["djangostack.db.PrimaryReplicaRouter"]
    assert s["MIDDLEWARE"][:2] == ["djangostack.db.ReadYourWritesMiddleware", STOCK_MIDDLEWARE_FIRST]


def test_a_port_per_host(tmp_path):
    s = settings_from(tmp_path, {"DJANGO_DB_HOST": "a,b,c", "DJANGO_DB_PORT": "5432, 5433,5432"})
    assert s["DATABASES"]["default"]["PORT"] == s["DATABASES"]["replica"]["PORT"] == "5432,5433,5432"


@pytest.mark.parametrize("ports", ["5432,5433", "5432,x,5432"])
def test_ports_that_do_not_match_the_hosts_are_refused(tmp_path, ports):
    proc = run(tmp_path, {"DJANGO_DB_HOST": "a,b,c", "DJANGO_DB_PORT": ports}, SETTINGS_PROBE)
    assert proc.returncode != 0
    assert "one port, or one per host of DJANGO_DB_HOST (3)" in proc.stderr


def test_read_replicas_off_reads_everything_from_the_leader(tmp_path):
    s = settings_from(tmp_path, {"DJANGO_DB_HOST": "a,b,c", "DJANGO_DB_READ_REPLICAS": "false"})
    assert list(s["DATABASES"]) == ["default"]
    assert s["DATABASES"]["default"]["OPTIONS"]["target_session_attrs"] == "read-write"
    assert s["ROUTERS"] is None
    assert s["MIDDLEWARE"][0] == STOCK_MIDDLEWARE_FIRST


ROUTING_PROBE = textwrap.dedent("""
    import json
    import django
    from django.conf import settings
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
                   "replica": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        DATABASE_ROUTERS=["djangostack.db.PrimaryReplicaRouter"],
        USE_TZ=True,
    )
    django.setup()
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command
    from django.db import connections, router, transaction
    from djangostack.db import ReadYourWritesMiddleware

    call_command("migrate", verbosity=0)                       # default
    call_command("migrate", database="replica", verbosity=0)   # nothing: the router refuses
    seen = {"replica_tables": connections["replica"].introspection.table_names()}

    def request(steps):
        def view(_request):
            out = []
            for step in steps:
                if step == "read":
                    out.append(ContentType.objects.all().db)
                elif step == "write":
                    ContentType.objects.create(app_label="x", model=str(len(out)) + str(id(out)))
                    out.append("wrote")
                elif step == "locked read":
                    out.append(ContentType.objects.select_for_update().db)
                elif step == "atomic read":
                    with transaction.atomic():
                        out.append(ContentType.objects.all().db)
            return out
        return ReadYourWritesMiddleware(view)(object())

    seen["plain"] = request(["read", "read"])
    seen["write then read"] = request(["read", "write", "read"])
    seen["next request"] = request(["read"])
    seen["locked read"] = request(["locked read", "read"])
    seen["atomic"] = request(["atomic read", "read"])
    seen["migrate"] = [router.allow_migrate(db, "contenttypes") for db in ("default", "replica")]
    print(json.dumps(seen))
""")


def test_reads_go_to_replicas_until_the_request_writes(tmp_path):
    proc = run(tmp_path, {"DJANGO_DB_HOST": "unused"}, ROUTING_PROBE)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["plain"] == ["replica", "replica"]
    # Read-your-writes: after its first write the request reads from the leader...
    assert seen["write then read"] == ["replica", "wrote", "default"]
    # ...and the next request starts on the replicas again.
    assert seen["next request"] == ["replica"]
    # A read that locks rows is a write's read: the leader, and it pins.
    assert seen["locked read"] == ["default", "default"]
    # Inside a transaction on the leader, reads stay on it; after it, not.
    assert seen["atomic"] == ["default", "replica"]
    assert seen["migrate"] == [True, False]
    # migrate --database=replica makes only its own bookkeeping table there.
    assert "django_content_type" not in seen["replica_tables"]


def test_migrated_cannot_tell_without_a_database_and_says_so(tmp_path):
    """python -m djangostack.migrated: a database nobody answers at (a host
    the database does not let in yet) is no reason to refuse the code."""
    path = tmp_path / "app.env"
    values = {**REQUIRED, "DJANGO_DB_HOST": "127.0.0.1", "DJANGO_DB_PORT": "9", "DJANGO_DB_PASSWORD": "x"}
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_ENV_FILE=str(path), DJANGO_SETTINGS_MODULE="djangostack.settings")
    proc = subprocess.run([sys.executable, "-m", "djangostack.migrated"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "the database cannot be reached" in proc.stderr

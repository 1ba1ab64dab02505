"""A three-member database (Patroni) with three etcd hosts: each host's
pillar from the adapters, and what the formulas render from it. Salt owns
Patroni's configuration, never what Patroni rewrites or a member's restart."""
import copy
import json

import pytest
import salt.client

from tests.fast.conftest import arg
from tests.fast.test_ha_validation import PATRONI_SECRETS, ha_secrets

TOPOLOGY = {
    "network": "10.77.0.0/24",
    "hosts": {
        "lb1": {"address": "10.77.0.10", "roles": ["loadbalancer"]},
        "app1": {"address": "10.77.0.11", "roles": ["app"]},
        "app2": {"address": "10.77.0.12", "roles": ["app"]},
        "db1": {"address": "10.77.0.20", "roles": ["database", "dcs"]},
        "db2": {"address": "10.77.0.21", "roles": ["database", "dcs"]},
        # A member on a port of its own: every consumer gets it.
        "db3": {"address": "10.77.0.22", "roles": ["database", "dcs"], "options": {"database": {"port": 5433}}},
        "media1": {"address": "10.77.0.30", "roles": ["media", "cache"]},
    },
}
MEMBERS = {"db1": "10.77.0.20", "db2": "10.77.0.21", "db3": "10.77.0.22"}


@pytest.fixture
def ha(renderer):
    renderer.use_topology(copy.deepcopy(TOPOLOGY))
    renderer.write_secrets(ha_secrets())
    return renderer


def pillar_of(renderer, host):
    pillar = renderer.pillar(host, TOPOLOGY["hosts"][host]["address"])
    assert "_errors" not in pillar, pillar["_errors"]
    return pillar


def chunks(renderer, host):
    highstate = renderer.highstate(host, TOPOLOGY["hosts"][host]["address"])
    assert isinstance(highstate, dict), highstate
    return {k: v for k, v in highstate.items() if isinstance(v, dict)}


def test_every_member_runs_etcd_then_patroni_in_deploy_order(ha):
    for host in MEMBERS:
        stack = pillar_of(ha, host)["stack"]
        states = stack["states"]
        assert states[:4] == ["etcd", "postgres.server", "patroni", "postgres.databases"], states
        assert "patroni.clean" not in stack["retire"] and "etcd.clean" not in stack["retire"]
    # Hosts without the role retire Patroni and etcd should they have had them.
    retire = pillar_of(ha, "app1")["stack"]["retire"]
    assert {"patroni.clean", "postgres.clean", "etcd.clean"} <= set(retire)
    assert retire.index("patroni.clean") < retire.index("postgres.clean")


def test_the_patroni_pillar_of_a_member(ha):
    pillar = pillar_of(ha, "db2")
    assert pillar["postgres"]["patroni"] is True
    assert pillar["postgres"]["listen_addresses"] == ["10.77.0.21"]
    assert pillar["patroni"] == {
        "name": "db2",
        "address": "10.77.0.21",
        "api_port": 8008,
        "etcd_hosts": ["10.77.0.20:2379", "10.77.0.21:2379", "10.77.0.22:2379"],
        "bootstrap_member": "db1",
        "members": MEMBERS,
        "passwords": PATRONI_SECRETS,
    }
    assert pillar_of(ha, "db3")["postgres"]["port"] == 5433


def test_the_etcd_pillar_of_a_dcs_host(ha):
    assert pillar_of(ha, "db3")["etcd"] == {
        "name": "db3",
        "address": "10.77.0.22",
        "client_port": 2379,
        "peer_port": 2380,
        "initial_cluster": {h: f"http://{a}:2380" for h, a in MEMBERS.items()},
        "cluster_token": "django-stack-10.77.0.0/24",
    }


def test_app_hosts_get_every_member_and_no_patroni_secret(ha):
    pillar = pillar_of(ha, "app2")
    database = pillar["django"]["apps"]["demo"]["database"]
    assert database["host"] == list(MEMBERS.values())
    assert database["port"] == [5432, 5432, 5433]
    for host in ("app1", "app2", "lb1", "media1"):
        flat = repr(pillar_of(ha, host))
        assert not any(pw in flat for pw in PATRONI_SECRETS.values()), host
        assert "patroni" not in pillar_of(ha, host)


def test_the_app_env_file_lists_every_member(ha):
    env_chunk = chunks(ha, "app1")["django-demo-env-file"]
    app = arg(env_chunk, "context")["app"]
    caller = salt.client.Caller(mopts=ha.opts("app1", "10.77.0.11"))
    text = caller.cmd("slsutil.renderer", path="salt://django/files/app.env.jinja", default_renderer="jinja", saltenv="stack", app=app)
    assert "DJANGO_DB_HOST=10.77.0.20,10.77.0.21,10.77.0.22\n" in text
    assert "DJANGO_DB_PORT=5432,5432,5433\n" in text


def patroni_config(renderer, host):
    return arg(chunks(renderer, host)["patroni-config"], "dataset")


def test_patroni_configuration_for_fast_failover_and_no_lost_commit(ha):
    config = patroni_config(ha, "db1")
    dcs = config["bootstrap"]["dcs"]
    # Failover once the leader's lock is 20 s old (Patroni's lowest ttl).
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (20, 2, 9)
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    # Synchronous by default: a failover never loses an acknowledged commit.
    assert dcs["synchronous_mode"] is True and dcs["synchronous_mode_strict"] is False
    assert dcs["postgresql"]["use_pg_rewind"] is True and dcs["postgresql"]["use_slots"] is True
    assert dcs["postgresql"]["parameters"]["max_connections"] == 100
    assert dcs["postgresql"]["parameters"]["wal_log_hints"] == "on"
    # The same keys are what Salt keeps the DCS at after bootstrap.
    wanted = arg(chunks(ha, "db1")["patroni-dynamic-config-wanted"], "dataset")
    assert wanted == dcs


def test_patroni_runs_the_postgres_formulas_cluster_the_debian_way(ha):
    config = patroni_config(ha, "db3")
    assert config["scope"] == "17-main" and config["namespace"] == "/postgresql-common/"
    assert config["name"] == "db3"
    assert config["etcd3"] == {"hosts": ["10.77.0.20:2379", "10.77.0.21:2379", "10.77.0.22:2379"]}
    assert config["restapi"]["listen"] == config["restapi"]["connect_address"] == "10.77.0.22:8008"
    assert config["restapi"]["authentication"] == {"username": "patroni", "password": PATRONI_SECRETS["restapi"]}
    assert config["bootstrap"]["method"] == "pg_createcluster"
    assert config["bootstrap"]["pg_createcluster"]["command"] == "/usr/share/patroni/pg_createcluster_patroni"
    pg = config["postgresql"]
    assert pg["create_replica_methods"] == ["pg_clonecluster"]
    assert pg["pg_clonecluster"]["command"] == "/usr/local/lib/salt-patroni/clone_member"
    assert pg["listen"] == "localhost,10.77.0.22:5433"
    assert pg["connect_address"] == "10.77.0.22:5433"
    assert (pg["data_dir"], pg["config_dir"], pg["bin_dir"]) == (
        "/var/lib/postgresql/17/main", "/etc/postgresql/17/main", "/usr/lib/postgresql/17/bin")
    assert pg["authentication"]["replication"] == {"username": "replicator", "password": PATRONI_SECRETS["replication"]}
    assert pg["authentication"]["rewind"] == {"username": "rewind", "password": PATRONI_SECRETS["rewind"]}
    # Per member: the postgres formula's memory settings; cluster-wide ones only in the DCS.
    assert "shared_buffers" in pg["parameters"] and "max_connections" not in pg["parameters"]
    assert pg["parameters"]["password_encryption"] == "scram-sha-256"
    assert not {"listen_addresses", "port"} & set(pg["parameters"])


def test_replication_and_rewind_only_from_members(ha):
    hba = patroni_config(ha, "db2")["postgresql"]["pg_hba"]
    replication = [line for line in hba if " replication " in line]
    assert replication == [
        "host replication replicator 127.0.0.1/32 scram-sha-256",
        "host replication replicator ::1/128 scram-sha-256",
    ] + [f"host replication replicator {a}/32 scram-sha-256" for a in MEMBERS.values()]
    assert [line for line in hba if " rewind " in line] == [
        f"host postgres rewind {a}/32 scram-sha-256" for a in MEMBERS.values()]
    clients = [line for line in hba if line.startswith("host demo ")]
    assert clients == ["host demo demo 10.77.0.11/32 scram-sha-256", "host demo demo 10.77.0.12/32 scram-sha-256"]
    assert not any("0.0.0.0" in line or " all all 10." in line for line in hba)


def test_salt_never_manages_what_patroni_owns(ha):
    # Taking over a single database's cluster only hands it to Patroni: the
    # plain mode's settings file goes, start.conf says manual, Debian's unit
    # stops (a no-op once Patroni runs the cluster).
    takeover = {"postgres-plain-settings-absent": "file.absent",
                "patroni-takeover-start-manual": "file.replace",
                "patroni-takeover-plain-service-stopped": "service.dead"}
    for host in MEMBERS:
        rendered = chunks(ha, host)
        for name, function in takeover.items():
            module, args = next((m, a) for m, a in rendered[name].items() if not m.startswith("__"))
            assert f"{module}.{next(a for a in args if isinstance(a, str))}" == function, name
        assert arg(rendered["patroni-takeover-start-manual"], "repl") == "manual"
        for name, chunk in rendered.items():
            if name in takeover:
                continue
            target = str(arg(chunk, "name", name))
            # Nothing in the data directory or the cluster's config directory (Patroni
            # rewrites postgresql.conf and pg_hba.conf there; a clone replaces it all).
            assert not target.startswith(("/var/lib/postgresql", "/etc/postgresql/")), (host, name)
            assert "postgresql@" not in target, (host, name)
            assert "restart" not in json.dumps(chunk), (host, name)
        # Debian's own cluster and its unit are never made or started.
        assert not {"postgres-cluster-created", "postgres-cluster-running", "postgres-settings",
                    "postgres-hba"} & set(rendered)
        service = rendered["patroni-service-running"]
        assert arg(service, "name") == "patroni@17-main" and arg(service, "reload") is True
        # Every command says when it has nothing to do.
        for name, chunk in rendered.items():
            if "cmd" in chunk:
                assert arg(chunk, "unless", None) or arg(chunk, "onlyif", None) or arg(chunk, "onchanges", None), name


def test_users_and_databases_are_made_on_the_leader_only(ha):
    rendered = chunks(ha, "db2")
    for name in ("postgres-user-demo", "postgres-database-demo"):
        assert arg(rendered[name], "onlyif") == \
            "runuser -u postgres -- psql -XAtq -p 5432 -c 'SELECT pg_is_in_recovery()' | grep -qx f"
        assert {"cmd": "postgres-patroni-member-answers"} in arg(rendered[name], "require")
    settings = rendered["postgres-createcluster-settings"]
    assert arg(settings, "contents").splitlines()[1:] == [
        "initdb_options = '--locale=C.UTF-8 --encoding=UTF8'", "create_main_cluster = off"]


def test_a_hosts_pillar_from_the_command_line(ha, repo):
    """python3 -m stackpillar pillar SITE_DIR ID: what the master gives the host
    (the containers of the HA proof got their pillar this way)."""
    import subprocess
    import sys

    import yaml

    run = subprocess.run([sys.executable, "-m", "stackpillar", "pillar", str(ha.pillar_root), "db2"],
                         cwd=repo / "pillar", capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "&id" not in run.stdout  # plain YAML, no anchors
    assert yaml.safe_load(run.stdout) == pillar_of(ha, "db2")

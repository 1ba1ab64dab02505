"""The etcd and patroni formulas on their own (no stack pillar): the one
map.jinja idiom, Debian 12 and 13 only, clean states that need no pillar,
required pillar named, and the tools the patroni formula installs."""
import base64
import http.server
import importlib.util
import json
import re
import subprocess
import threading

import pytest
import yaml

from tests.fast.test_formulas_contract import FORMULAS, Minion, arg, states

NAMES = ["etcd", "patroni"]
ETCD = {"etcd": {"name": "db1", "address": "10.0.0.20",
                 "initial_cluster": {"db2": "http://10.0.0.21:2380", "db1": "http://10.0.0.20:2380",
                                     "db3": "http://10.0.0.22:2380"}}}
PATRONI = {
    "postgres": {"listen_addresses": ["10.0.0.20"], "memory_mb": 512, "patroni": True},
    "patroni": {"name": "db1", "address": "10.0.0.20", "etcd_hosts": ["10.0.0.20:2379"],
                "members": {"db1": "10.0.0.20"},
                "passwords": {"replication": "r", "rewind": "w", "restapi": "a"}},
}


@pytest.fixture
def minion(tmp_path):
    return Minion(tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_the_same_three_layers_as_every_formula(name):
    text = (FORMULAS / name / "map.jinja").read_text()
    assert re.search(r"salt\['slsutil\.merge_all'\]\(\s*\[defaults\." + name + r", releases\[release\] or \{\}, "
                     r"salt\['pillar\.get'\]\('" + name + r"', \{\}\) or \{\}\],\s*"
                     r"strategy='recurse', merge_lists=False\)", text), name
    assert sorted(yaml.safe_load((FORMULAS / name / "osmajorreleasemap.yaml").read_text())) == [12, 13]


@pytest.mark.parametrize("sls", ["etcd.clean", "patroni.clean"])
@pytest.mark.parametrize("release", [12, 13])
def test_clean_states_need_no_pillar(minion, sls, release):
    rendered = states(minion.show_sls(sls, {}, release))
    assert rendered, sls


@pytest.mark.parametrize("sls, pillar", [("etcd", ETCD), ("patroni", PATRONI)])
def test_other_releases_are_refused_by_name(minion, sls, pillar):
    result = minion.show_sls(sls, pillar, 11)
    assert f"formula {sls} supports Debian 12 and 13 only; this host runs Debian 11" in str(result)


def test_etcd_member_from_pillar(minion):
    rendered = states(minion.show_sls("etcd", ETCD, 13))
    env = arg(rendered["etcd-config"], "context")["env"]
    assert env["ETCD_NAME"] == "db1"
    assert env["ETCD_LISTEN_CLIENT_URLS"] == "http://10.0.0.20:2379,http://127.0.0.1:2379"
    assert env["ETCD_ADVERTISE_CLIENT_URLS"] == "http://10.0.0.20:2379"
    assert env["ETCD_LISTEN_PEER_URLS"] == env["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "http://10.0.0.20:2380"
    assert env["ETCD_INITIAL_CLUSTER"] == \
        "db1=http://10.0.0.20:2380,db2=http://10.0.0.21:2380,db3=http://10.0.0.22:2380"
    assert env["ETCD_DATA_DIR"] == "/var/lib/etcd/cluster"
    assert env["ETCD_AUTO_COMPACTION_MODE"] == "periodic"
    assert arg(rendered["etcd-service-running"], "watch") == [{"file": "etcd-config"}]
    # Debian's throwaway first member goes only right after Salt installed the package.
    assert arg(rendered["etcd-package-default-member-removed"], "onchanges") == [{"pkg": "etcd-package-installed"}]


@pytest.mark.parametrize("missing, message", [
    ("name", "pillar etcd:name is required"),
    ("initial_cluster", "pillar etcd:initial_cluster must list every member, db1 included"),
])
def test_etcd_names_missing_pillar(minion, missing, message):
    pillar = json.loads(json.dumps(ETCD))
    pillar["etcd"].pop(missing)
    assert message in str(minion.show_sls("etcd", pillar, 13))


@pytest.mark.parametrize("release, version", [(12, 15), (13, 17)])
def test_patroni_runs_the_releases_cluster(minion, release, version):
    rendered = states(minion.show_sls("patroni", PATRONI, release))
    config = arg(rendered["patroni-config"], "dataset")
    assert config["scope"] == f"{version}-main"
    assert config["postgresql"]["bin_dir"] == f"/usr/lib/postgresql/{version}/bin"
    assert arg(rendered["patroni-config"], "name") == f"/etc/patroni/{version}-main.yml"
    assert arg(rendered["patroni-service-running"], "name") == f"patroni@{version}-main"
    assert arg(rendered["patroni-package-installed"], "pkgs") == ["patroni", "python3-etcd"]
    # Secrets inside: not world-readable, never in a diff.
    assert arg(rendered["patroni-config"], "mode") == "0640"
    assert arg(rendered["patroni-config"], "show_changes") is False
    # The postgres formula only installs; Debian's own cluster is not made.
    assert "postgres-cluster-created" not in rendered and "postgres-packages-installed" in rendered


def test_patroni_names_a_missing_password(minion):
    pillar = json.loads(json.dumps(PATRONI))
    pillar["patroni"]["passwords"].pop("rewind")
    assert "pillar patroni:passwords:rewind is required" in str(minion.show_sls("patroni", pillar, 13))


def load_tool():
    spec = importlib.util.spec_from_file_location("dynamic_config", FORMULAS / "patroni" / "files" / "dynamic_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dynamic_config_compares_only_the_keys_salt_gives():
    tool = load_tool()
    have = {"ttl": 20, "pause": True, "synchronous_mode": "on",
            "postgresql": {"use_slots": True, "parameters": {"Max_Connections": "100", "wal_level": "replica"}}}
    assert list(tool.differences({"ttl": 20, "synchronous_mode": True,
                                  "postgresql": {"parameters": {"max_connections": 100}}}, have)) == []
    assert list(tool.differences({"ttl": 30, "postgresql": {"parameters": {"hot_standby_feedback": "on"}}}, have)) \
        == ["ttl: 20 (want 30)", "postgresql:parameters:hot_standby_feedback: missing (want 'on')"]


class PatroniStub:
    """GET/PATCH /config as Patroni's REST API answers them (127.0.0.1 only)."""

    def __init__(self):
        self.config, self.patches = {"ttl": 30, "pause": True, "postgresql": {"use_slots": True}}, []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, data):
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, stub.config)

            def do_PATCH(self):
                if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"patroni:a").decode():
                    return self._send(401, {})
                patch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.patches.append(patch)
                stub.config = json.loads(json.dumps(stub.config))
                stub.config.update({k: v for k, v in patch.items() if not isinstance(v, dict)})
                stub.config["postgresql"].update(patch.get("postgresql", {}))
                self._send(200, stub.config)

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_dynamic_config_tool_patches_through_the_rest_api(tmp_path):
    stub = PatroniStub()
    try:
        config = tmp_path / "17-main.yml"
        config.write_text(yaml.safe_dump({"restapi": {"connect_address": stub.address, "authentication": {
            "username": "patroni", "password": "a"}}}))
        wanted = tmp_path / "wanted.yml"
        wanted.write_text(yaml.safe_dump({"ttl": 20, "postgresql": {"use_pg_rewind": True}}))
        tool = str(FORMULAS / "patroni" / "files" / "dynamic_config.py")

        def run(verb):
            return subprocess.run([tool, verb, str(config), str(wanted), "--wait", "1"],
                                  capture_output=True, text=True, timeout=30)

        assert run("check").returncode == 1
        applied = run("apply")
        assert applied.returncode == 0, applied.stderr
        assert stub.patches == [{"ttl": 20, "postgresql": {"use_pg_rewind": True}}]
        # Keys Salt does not give (a pause) stay; a second run has nothing to send.
        assert stub.config["pause"] is True
        assert run("check").returncode == 0 and run("apply").returncode == 0
        assert len(stub.patches) == 1
    finally:
        stub.server.shutdown()


def test_dynamic_config_tool_says_when_patroni_does_not_answer(tmp_path):
    config = tmp_path / "17-main.yml"
    config.write_text(yaml.safe_dump({"restapi": {"connect_address": "127.0.0.1:9"}}))
    wanted = tmp_path / "wanted.yml"
    wanted.write_text("ttl: 20\n")
    run = subprocess.run([str(FORMULAS / "patroni" / "files" / "dynamic_config.py"), "check", str(config),
                          str(wanted), "--wait", "0"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and "no dynamic configuration from http://127.0.0.1:9/config" in run.stderr


def test_clone_member_is_valid_sh_and_needs_its_arguments():
    script = FORMULAS / "patroni" / "files" / "clone_member"
    assert subprocess.run(["sh", "-n", str(script)], timeout=30).returncode == 0
    run = subprocess.run(["sh", str(script), "--scope=17-main"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "usage:" in run.stderr

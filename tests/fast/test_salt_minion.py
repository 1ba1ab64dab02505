"""Each host's own minion configuration (formula salt_minion): from
topology:salt_master, the same text in the pillar and in what
`stackpillar minion-config` prints for a host that joins by booting."""
import subprocess
import sys

import yaml

from tests.layouts import LAYOUTS, REPO, load_layout


def test_every_host_of_every_layout_gets_its_master_its_id_and_a_highstate_at_start(renderer):
    for layout in LAYOUTS:
        topology = load_layout(layout)
        renderer.use_topology(topology)
        for host, spec in topology["hosts"].items():
            pillar = renderer.pillar(host, spec["address"])
            config = yaml.safe_load(pillar["salt_minion"]["config"])
            assert config == {"master": topology["salt_master"], "id": host, "startup_states": "highstate"}


def test_a_master_named_by_its_host_id_is_reached_at_that_hosts_address(renderer):
    topology = load_layout("three-tier")
    topology["salt_master"] = "media1"
    renderer.use_topology(topology)
    pillar = renderer.pillar("app1", topology["hosts"]["app1"]["address"])
    assert yaml.safe_load(pillar["salt_minion"]["config"])["master"] == topology["hosts"]["media1"]["address"]


def test_without_a_master_the_minion_configuration_is_left_alone(renderer):
    topology = load_layout("single")
    del topology["salt_master"]
    renderer.use_topology(topology)
    assert "salt_minion" not in renderer.pillar("web1", topology["hosts"]["web1"]["address"])
    ids = renderer.highstate("web1", topology["hosts"]["web1"]["address"])
    assert "salt-minion-config-left-alone" in ids and "salt-minion-config" not in ids


def minion_config_cli(*args):
    return subprocess.run([sys.executable, "-m", "stackpillar", "minion-config", *args],
                          cwd=REPO / "pillar", capture_output=True, text=True)


def test_the_cli_prints_the_pillars_text_for_a_joining_host(renderer, tmp_path):
    topology = load_layout("three-tier")
    topology["hosts"]["app3"] = {"address": "10.77.0.13", "roles": ["app"]}
    path = tmp_path / "topology.sls"
    path.write_text(yaml.safe_dump({"topology": topology}))
    printed = minion_config_cli(str(path), "app3")
    assert printed.returncode == 0, printed.stderr
    renderer.use_topology(topology)
    assert printed.stdout == renderer.pillar("app3", "10.77.0.13")["salt_minion"]["config"]


def test_the_cli_refuses_a_host_the_topology_lacks_or_a_topology_without_master(tmp_path):
    topology = load_layout("single")
    path = tmp_path / "topology.sls"
    path.write_text(yaml.safe_dump({"topology": topology}))
    missing = minion_config_cli(str(path), "app3")
    assert missing.returncode == 2 and "topology:hosts has no app3" in missing.stderr
    del topology["salt_master"]
    path.write_text(yaml.safe_dump({"topology": topology}))
    masterless = minion_config_cli(str(path), "web1")
    assert masterless.returncode == 2 and "topology:salt_master is not set" in masterless.stderr

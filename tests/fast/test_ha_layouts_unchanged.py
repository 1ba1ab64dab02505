"""Layouts without dcs hosts render as they did before the HA work: one
plain PostgreSQL, the same pillar and the same postgres states.

test_ha_baseline.json holds every example layout's pillar and postgres
states as rendered before the dcs role existed. The only differences allowed
are the ones listed here: the registry's new role shows in stack's
bookkeeping (an empty dcs list, etcd.clean among the roles to retire, a no-op
on a host that never had etcd), and new clusters get their initdb locale and
encoding from the postgres formula (postgres-createcluster-settings) instead
of the environment Salt happens to run in.

After a deliberate change to what plain layouts render, rewrite the baseline
from the current tree (the allowed differences taken out again):

    PYTHONPATH=pillar .venv/bin/python -m tests.fast.test_ha_layouts_unchanged --regenerate
"""
import json
import pathlib
import sys
import tempfile

import pytest
import salt.client

from tests.layouts import REGISTRY

BASELINE_FILE = pathlib.Path(__file__).with_name("test_ha_baseline.json")
BASELINE = json.loads(BASELINE_FILE.read_text())
NEW_POSTGRES_STATES = {"postgres-createcluster-settings"}
RETIRE_ORDER = [sls for entry in REGISTRY["roles"].values() for sls in entry["retire"]]


def expected_pillar(before):
    pillar = json.loads(json.dumps(before))
    pillar["stack"]["hosts_by_role"]["dcs"] = []
    # Registry order; roles added after dcs retire after it.
    pillar["stack"]["retire"] = sorted(pillar["stack"]["retire"] + ["etcd.clean"], key=RETIRE_ORDER.index)
    return pillar


def postgres_states(highstate):
    """The postgres formula's rendered states, without Salt's run order."""
    result = {}
    for name, chunk in highstate.items():
        if not isinstance(chunk, dict) or not chunk["__sls__"].startswith("postgres"):
            continue
        result[name] = {k: ([a for a in v if not (isinstance(a, dict) and "order" in a)] if isinstance(v, list) else v)
                        for k, v in chunk.items() if k != "__env__"}
    return result


@pytest.mark.parametrize("layout", sorted({key.split("/")[0] for key in BASELINE}))
def test_a_layout_without_dcs_renders_as_before(renderer, layout):
    renderer.use_layout(layout)
    hosts = {key.split("/", 1)[1]: value for key, value in BASELINE.items() if key.startswith(layout + "/")}
    for host, before in hosts.items():
        address = before["pillar"]["stack"]["address"]
        pillar = renderer.pillar(host, address)
        assert pillar == expected_pillar(before["pillar"]), host
        assert not {"patroni", "etcd"} & set(pillar) and "warnings" not in pillar["stack"]

        states = postgres_states(renderer.highstate(host, address))
        added = {name: states.pop(name) for name in NEW_POSTGRES_STATES if name in states}
        assert states == before["postgres_states"], host
        if "database" in pillar["stack"]["roles"]:
            settings = added["postgres-createcluster-settings"]["file"]
            contents = next(a["contents"] for a in settings if isinstance(a, dict) and "contents" in a)
            # The package's own cluster: locale and encoding explicit, still created.
            assert contents.splitlines()[1:] == ["initdb_options = '--locale=C.UTF-8 --encoding=UTF8'"]
            assert {"require_in": [{"pkg": "postgres-packages-installed"}]} in settings
        else:
            assert added == {}


def test_the_single_database_hosts_env_file_is_as_before(renderer):
    renderer.use_layout("three-tier")
    caller = salt.client.Caller(mopts=renderer.opts("app1", "10.77.0.11"))
    highstate = caller.cmd("state.show_highstate")
    context = next(a["context"] for a in highstate["django-demo-env-file"]["file"]
                   if isinstance(a, dict) and "context" in a)
    text = caller.cmd("slsutil.renderer", path="salt://django/files/app.env.jinja", default_renderer="jinja",
                      saltenv="stack", app=context["app"])
    assert "DJANGO_DB_HOST=10.77.0.20\n" in text and "DJANGO_DB_PORT=5432\n" in text
    assert "DJANGO_DB_READ_REPLICAS" not in text


def regenerate():
    from tests.fast.conftest import Renderer
    from tests.layouts import LAYOUTS, hosts_with, load_layout

    baseline = {}
    with tempfile.TemporaryDirectory() as tmp:
        renderer = Renderer(pathlib.Path(tmp))
        for layout in LAYOUTS:
            if hosts_with(load_layout(layout), "dcs"):
                continue
            renderer.use_layout(layout)
            for host, spec in load_layout(layout)["hosts"].items():
                pillar = renderer.pillar(host, spec["address"])
                pillar["stack"]["hosts_by_role"].pop("dcs")
                pillar["stack"]["retire"].remove("etcd.clean")
                states = postgres_states(renderer.highstate(host, spec["address"]))
                for name in NEW_POSTGRES_STATES:
                    states.pop(name, None)
                baseline[f"{layout}/{host}"] = {"pillar": pillar, "postgres_states": states}
    BASELINE_FILE.write_text(json.dumps(baseline, indent=1, sort_keys=True) + "\n")
    print(f"{BASELINE_FILE}: {len(baseline)} hosts")


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:
    regenerate()

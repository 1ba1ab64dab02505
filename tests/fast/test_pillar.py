"""The topology becomes each formula's pillar; secrets go only where needed."""
import pytest

from tests.fast.conftest import SECRETS
from tests.layouts import LAYOUTS, addresses_with, hosts_with, load_layout

NEEDS_SECRET_KEY = {"app"}
NEEDS_DB_PASSWORD = {"app", "database"}
SECRET_KEY = SECRETS["secrets"]["django"]["demo"]["secret_key"]
DB_PASSWORD = SECRETS["secrets"]["postgres"]["users"]["demo"]


def test_there_are_the_four_documented_layouts():
    assert set(LAYOUTS) >= {"single", "split", "three-tier", "scaled"}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_host_gets_exactly_its_roles_pillar(renderer, layout):
    topology = load_layout(layout)
    renderer.use_layout(layout)
    leaders = []
    for host, spec in topology["hosts"].items():
        pillar = renderer.pillar(host, spec["address"])
        assert "_errors" not in pillar, pillar.get("_errors")
        roles = set(spec["roles"])
        assert pillar["stack"]["roles"] == spec["roles"]
        assert ("postgres" in pillar) == ("database" in roles)
        assert ("memcached" in pillar) == ("cache" in roles)
        assert ("django" in pillar) == ("app" in roles)
        assert ("media" in pillar.get("nginx", {})) == ("media" in roles)
        assert ("loadbalancer" in pillar.get("nginx", {})) == ("loadbalancer" in roles)

        flat = repr(pillar)
        assert (SECRET_KEY in flat) == bool(roles & NEEDS_SECRET_KEY), host
        assert (DB_PASSWORD in flat) == bool(roles & NEEDS_DB_PASSWORD), host

        if "app" in roles:
            app = pillar["django"]["apps"]["demo"]
            leaders += [host] if app["leader"] else []
            assert app["cache_servers"] == [f"{a}:11211" for a in addresses_with(topology, "cache")]
            members = addresses_with(topology, "database")
            # One database host, or every Patroni member (libpq finds the leader).
            assert app["database"]["host"] == (members[0] if len(members) == 1 else members)
            assert app["media_write_urls"] == [
                f"http://{a}:8081/demo/media/" for a in addresses_with(topology, "media")]
            assert app["uwsgi"]["socket"] == f"{spec['address']}:8000"
        if "database" in roles:
            hba = {line["address"] for line in pillar["postgres"]["hba"]}
            assert hba == {f"{a}/32" for a in addresses_with(topology, "app")}
            assert pillar["postgres"]["listen_addresses"] == [spec["address"]]
        if "loadbalancer" in roles:
            site = pillar["nginx"]["loadbalancer"]["sites"]["demo"]
            assert site["app_upstreams"] == [f"{a}:8000" for a in addresses_with(topology, "app")]
            assert site["media_upstreams"] == [f"{a}:8080" for a in addresses_with(topology, "media")]
        if "media" in roles:
            assert pillar["nginx"]["media"]["dav_allow"] == addresses_with(topology, "app")
        if "cache" in roles:
            assert pillar["memcached"]["listen"] == spec["address"]
    assert leaders == [hosts_with(topology, "app")[0]], "exactly one app host runs migrations"


def test_per_host_role_options_reach_the_formula(renderer):
    renderer.use_layout("scaled")
    assert renderer.pillar("cache-01.example.internal", "10.77.0.41")["memcached"]["memory_mb"] == 128


def test_a_host_with_no_roles_checks_itself_and_retires_everything(renderer):
    """A host the topology lists with no roles (the empty host a tier moves
    to, or one whose roles all moved away) holds nothing and retires all."""
    topology = load_layout("three-tier")
    topology["hosts"]["spare1"] = {"address": "10.77.0.40", "roles": []}
    renderer.use_topology(topology)
    pillar = renderer.pillar("spare1", "10.77.0.40")
    assert "_errors" not in pillar, pillar.get("_errors")
    assert (pillar["stack"]["roles"], pillar["stack"]["states"]) == ([], [])
    highstate = renderer.highstate("spare1", "10.77.0.40")
    assert isinstance(highstate, dict), highstate
    rendered = {chunk["__sls__"] for chunk in highstate.values() if isinstance(chunk, dict)}
    assert {"stack.host", "stack.retire"} <= rendered
    assert set(pillar["stack"]["retire"]) <= rendered

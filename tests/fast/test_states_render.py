"""Every host of every layout gets a highstate that renders, from its roles only."""
import pytest

from tests.layouts import LAYOUTS, load_layout

ROLE_SLS = {"database": "postgres.server", "cache": "memcached", "app": "django",
            "media": "nginx.media", "loadbalancer": "nginx.loadbalancer"}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_highstate_renders_for_every_host(renderer, layout):
    topology = load_layout(layout)
    renderer.use_layout(layout)
    for host, spec in topology["hosts"].items():
        highstate = renderer.highstate(host, spec["address"])
        assert isinstance(highstate, dict), f"{host}: {highstate}"
        rendered_sls = {chunk["__sls__"] for chunk in highstate.values() if isinstance(chunk, dict)}
        for role, sls in ROLE_SLS.items():
            assert (sls in rendered_sls) == (role in spec["roles"]), (host, role, sorted(rendered_sls))


def test_a_host_whose_address_is_wrong_is_refused(renderer):
    renderer.use_layout("three-tier")
    result = renderer.highstate("app1", "10.77.0.99")
    assert "topology:hosts:app1:address is 10.77.0.11" in str(result)


def test_a_minion_outside_the_topology_gets_nothing_from_the_stack(renderer):
    """Another minion of the same master: no stack pillar, no stack states."""
    renderer.use_layout("three-tier")
    pillar = renderer.pillar("backup-old.example.internal", "10.77.0.99")
    assert not {"stack", "postgres", "memcached", "django", "nginx"} & set(pillar), pillar
    assert renderer.highstate("backup-old.example.internal", "10.77.0.99") == {}

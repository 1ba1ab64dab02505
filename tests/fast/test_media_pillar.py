"""Media hosts copy uploads from each other and the backup host snapshots
them: who may read whose uploads, who copies from whom, for each layout."""
import pytest
import salt.client

from tests.fast.conftest import arg
from tests.layouts import load_layout


def host_pillar(renderer, layout, host):
    renderer.use_layout(layout)
    pillar = renderer.pillar(host, load_layout(layout)["hosts"][host]["address"])
    assert "_errors" not in pillar, pillar["_errors"]
    return pillar


def address(layout, host):
    return load_layout(layout)["hosts"][host]["address"]


def test_two_media_hosts_copy_from_each_other_and_nobody_else_reads(renderer):
    layout = "scaled"
    one, two = "media-01.example.internal", "media-02.example.internal"
    sync = host_pillar(renderer, layout, one)["media_sync"]
    assert sync["peers"] == [f"rsync://{address(layout, two)}:873"]
    assert sync["readers"] == [address(layout, two)] and sync["restorers"] == []
    assert sync["address"] == address(layout, one)
    assert host_pillar(renderer, layout, one)["stack"]["states"] == ["nginx.media", "media_sync"]


def test_a_media_host_with_a_separate_backup_host_lets_it_read_and_restore(renderer):
    sync = host_pillar(renderer, "replicated", "web1")["media_sync"]
    assert sync["peers"] == [] and sync["readers"] == sync["restorers"] == [address("replicated", "backup1")]
    backup = host_pillar(renderer, "replicated", "backup1")["media_backup"]
    assert backup == {"source": f"rsync://{address('replicated', 'web1')}:873",
                      "restore_targets": [f"rsync://{address('replicated', 'web1')}:873"]}


def test_a_media_host_that_is_the_backup_host_needs_no_daemon(renderer):
    pillar = host_pillar(renderer, "three-tier", "media1")
    assert pillar["media_sync"]["readers"] == pillar["media_sync"]["restorers"] == []
    assert pillar["media_backup"] == {"source": None, "restore_targets": ["local"]}
    highstate = renderer.highstate("media1", address("three-tier", "media1"))
    assert "dead" in highstate["media-sync-daemon"]["service"]
    conf = arg(highstate["media-backup-config"], "context")["b"]
    assert conf["source"] is None and conf["media_root"] == "/srv/media"


@pytest.mark.parametrize("layout", ["single", "scaled", "three-tier"])
def test_the_load_balancer_asks_the_next_media_host_on_a_404(renderer, layout):
    renderer.use_layout(layout)
    host = next(h for h, spec in load_layout(layout)["hosts"].items() if "loadbalancer" in spec["roles"])
    caller = salt.client.Caller(mopts=renderer.opts(host, address(layout, host)))
    lb = arg(caller.cmd("state.show_highstate")["nginx-loadbalancer-site"], "context")["lb"]
    text = caller.cmd("slsutil.renderer", path="salt://nginx/files/loadbalancer.conf.jinja",
                      default_renderer="jinja", saltenv="stack", lb=lb)
    media = text[text.index("location /media/"):]
    assert "proxy_next_upstream error timeout http_404" in media[:media.index("}")]

"""The backup role on the replicated layout: each host's pgBackRest pillar,
the configuration the formula renders from it, and TLS material that is the
same at every render and reaches only the hosts it names."""
import copy

import pytest
from cryptography import x509

from tests.fast.conftest import SECRETS, arg
from tests.layouts import load_layout

LAYOUT = "replicated"
ARCHIVE_PUSH = "pgbackrest --stanza=main archive-push %p"


@pytest.fixture
def site(renderer):
    renderer.use_layout(LAYOUT)
    return renderer


def address(host):
    return load_layout(LAYOUT)["hosts"][host]["address"]


def pillar_of(renderer, host):
    pillar = renderer.pillar(host, address(host))
    assert "_errors" not in pillar, pillar["_errors"]
    return pillar


def rendered_conf(renderer, host):
    """pgbackrest.conf as the formula renders it: [(section, key, value)]."""
    chunk = renderer.highstate(host, address(host))["pgbackrest-config"]
    lines = []
    for section, options in arg(chunk, "context")["conf"]:
        lines += [(section, key, str(value)) for key, value in options]
    return lines


def test_database_hosts_archive_to_the_repository_through_its_tls_server(site):
    for host in ("db1", "db2", "db3"):
        pillar = pillar_of(site, host)
        assert pillar["postgres"]["settings"]["archive_command"] == ARCHIVE_PUSH
        assert pillar["postgres"]["settings"]["archive_mode"] == "on"
        assert "pgbackrest.database" in pillar["stack"]["states"]
        conf = rendered_conf(site, host)
        assert ("global", "repo1-host", address("backup1")) in conf
        assert ("global", "repo1-host-type", "tls") in conf
        # Only the repository host may connect to this host's server.
        assert [v for s, k, v in conf if k == "tls-server-auth"] == ["backup1=main"]
        assert ("global", "tls-server-address", address(host)) in conf
        assert ("main", "pg1-path", "/var/lib/postgresql/17/main") in conf


def test_the_repository_backs_up_every_member_and_lets_only_them_in(site):
    pillar = pillar_of(site, "backup1")
    assert pillar["stack"]["states"] == ["pgbackrest.repository", "media_backup"]
    conf = rendered_conf(site, "backup1")
    assert [v for s, k, v in conf if k == "tls-server-auth"] == ["db1=main", "db2=main", "db3=main"]
    assert [v for s, k, v in conf if k.endswith("-host") and s == "main"] == [
        address("db1"), address("db2"), address("db3")]
    assert ("global", "repo1-retention-full", "2") in conf
    assert not [k for s, k, v in conf if k.startswith("repo1-host")]


def test_tls_material_is_the_same_at_every_render_and_names_its_host(site):
    first = pillar_of(site, "db2")["pgbackrest"]["tls"]
    assert pillar_of(site, "db2")["pgbackrest"]["tls"] == first
    cert = x509.load_pem_x509_certificate(first["cert"].encode())
    assert cert.subject.rfc4514_string() == "CN=db2"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [address("db2")]
    ca = x509.load_pem_x509_certificate(first["ca"].encode())
    cert.verify_directly_issued_by(ca)
    assert pillar_of(site, "db3")["pgbackrest"]["tls"]["key"] != first["key"]


def test_the_seed_stays_in_the_pillar_renderer_and_keys_only_on_their_hosts(site):
    seed = SECRETS["secrets"]["pgbackrest"]["tls_seed"]
    for host in load_layout(LAYOUT)["hosts"]:
        pillar = pillar_of(site, host)
        assert seed not in repr(pillar), host
        # The web host neither archives nor backs up: no key of any host.
        assert ("pgbackrest" in pillar) == (host != "web1"), host


def test_without_a_backup_host_nothing_archives_and_nothing_listens(renderer):
    topology = copy.deepcopy(load_layout(LAYOUT))
    del topology["hosts"]["backup1"]
    renderer.use_topology(topology)
    pillar = renderer.pillar("db1", address("db1"))
    assert pillar["postgres"]["settings"]["archive_command"] == "/bin/true"
    assert "pgbackrest" not in pillar
    highstate = renderer.highstate("db1", address("db1"))
    assert "pgbackrest-config" not in highstate and "pgbackrest-config-absent" in highstate


def test_a_missing_seed_names_the_key_and_the_host(renderer):
    renderer.use_layout(LAYOUT)
    secrets = copy.deepcopy(SECRETS)
    del secrets["secrets"]["pgbackrest"]
    renderer.write_secrets(secrets)
    errors = str(renderer.pillar("backup1", address("backup1")).get("_errors"))
    assert "secrets:pgbackrest:tls_seed" in errors and "backup1" in errors, errors

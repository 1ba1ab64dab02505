"""Media writes need the app's own credential besides an app host's address:
the token is derived in the pillar from the app's secret key and reaches only
the app hosts (their env file); the media hosts get only its {SSHA} hash, one
htpasswd file per app, and nginx asks for it on each app's WebDAV trees."""
import base64
import copy
import hashlib
import hmac
import re

import pytest
import salt.client
import yaml

from tests.fast.conftest import EXAMPLE_APPS, SECRETS, arg
from tests.layouts import LAYOUTS, hosts_with, load_layout

# Two apps: one app's credential must not open the other's trees.
APPS = yaml.safe_load(EXAMPLE_APPS.read_text())
APPS["apps"]["shop"] = {**copy.deepcopy(APPS["apps"]["demo"]), "server_names": ["shop.example.com"],
                        "database": {"name": "shop", "user": "shop"}, "port": 8001}
TWO_APP_SECRETS = copy.deepcopy(SECRETS)
TWO_APP_SECRETS["secrets"]["django"]["shop"] = {"secret_key": "test-shop-secret-key-of-the-fast-suite-0123456789-abcdefghij"}
TWO_APP_SECRETS["secrets"]["postgres"]["users"]["shop"] = "test-shop-db-password-of-the-fast-suite"
TWO_APP_SECRETS["secrets"]["mail"]["shop"] = "test-shop-mail-password-of-the-fast-suite"
SECRET_KEYS = {app: TWO_APP_SECRETS["secrets"]["django"][app]["secret_key"] for app in APPS["apps"]}


def token_of(app):
    """The spec, written out again: urlsafe base64 (unpadded) of
    HMAC-SHA256(the app's secret key, "media-write:<app>")."""
    digest = hmac.new(SECRET_KEYS[app].encode(), f"media-write:{app}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def ssha_verifies(hashed, password):
    """nginx's {SSHA} check: base64(SHA1(password + salt) + salt)."""
    assert hashed.startswith("{SSHA}"), hashed
    raw = base64.b64decode(hashed[len("{SSHA}"):], validate=True)
    digest, salt = raw[:20], raw[20:]
    return hmac.compare_digest(hashlib.sha1(password.encode() + salt).digest(), digest)


@pytest.fixture
def site(renderer):
    renderer.write("apps.sls", yaml.safe_dump(APPS))
    renderer.write_secrets(TWO_APP_SECRETS)
    return renderer


def pillar_of(renderer, layout, host):
    pillar = renderer.pillar(host, load_layout(layout)["hosts"][host]["address"])
    assert "_errors" not in pillar, pillar["_errors"]
    return pillar


def caller(renderer, layout, host):
    return salt.client.Caller(mopts=renderer.opts(host, load_layout(layout)["hosts"][host]["address"]))


def test_the_spec_check_itself():
    assert ssha_verifies("{SSHA}9P1lO0Kw3DMcDsnvjPms175q15vpvVc+ar45F/AdXLkNhxBS",
                         "dA-25DI3e5W931-sjFda-Ihp9MWN8snXQiUVJBxK-dg"), "formulas' pillar.example pair"
    assert not ssha_verifies("{SSHA}9P1lO0Kw3DMcDsnvjPms175q15vpvVc+ar45F/AdXLkNhxBS", "wrong")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_app_hosts_hold_the_token_media_hosts_only_its_hash(site, layout):
    site.use_layout(layout)
    topology = load_layout(layout)
    tokens = {app: token_of(app) for app in APPS["apps"]}
    for host, spec in topology["hosts"].items():
        pillar = pillar_of(site, layout, host)
        flat = repr(pillar)
        roles = set(spec["roles"])
        for app, token in tokens.items():
            # The token: on app hosts only, for the apps they run.
            assert (token in flat) == ("app" in roles), (host, app)
            if "app" in roles:
                assert pillar["django"]["apps"][app]["media_write_token"] == token
            if "media" in roles:
                hashed = pillar["nginx"]["media"]["sites"][app]["dav_password_hash"]
                assert ssha_verifies(hashed, token), (host, app)
                assert not ssha_verifies(hashed, tokens["shop" if app == "demo" else "demo"])
                # Neither the token nor the secret key it comes from.
                assert SECRET_KEYS[app] not in flat or "app" in roles, host
            else:
                assert "dav_password_hash" not in flat, host


def test_the_hash_is_the_same_at_every_render_and_per_app(site):
    """A re-apply changes nothing; each app has its own salt and hash."""
    site.use_layout("scaled")
    hosts = hosts_with(load_layout("scaled"), "media")
    sites = [pillar_of(site, "scaled", h)["nginx"]["media"]["sites"] for h in hosts + hosts]
    assert all(s == sites[0] for s in sites)
    assert sites[0]["demo"]["dav_password_hash"] != sites[0]["shop"]["dav_password_hash"]


def test_a_new_secret_key_rotates_token_and_hash(site):
    site.use_layout("three-tier")
    before = pillar_of(site, "three-tier", "media1")["nginx"]["media"]["sites"]
    rotated = copy.deepcopy(TWO_APP_SECRETS)
    rotated["secrets"]["django"]["demo"]["secret_key"] = "test-secret-key-2-of-the-fast-suite-0123456789-abcdefghijkl"
    site.write_secrets(rotated)
    after = pillar_of(site, "three-tier", "media1")["nginx"]["media"]["sites"]
    assert after["demo"]["dav_password_hash"] != before["demo"]["dav_password_hash"]
    assert after["shop"] == before["shop"]


def test_media_host_writes_one_htpasswd_per_app_and_nginx_asks_for_it(site):
    layout, host = "three-tier", "media1"
    site.use_layout(layout)
    pillar = pillar_of(site, layout, host)
    call = caller(site, layout, host)
    highstate = call.cmd("state.show_highstate")
    for app in APPS["apps"]:
        chunk = highstate[f"nginx-media-{app}-writer"]
        assert arg(chunk, "name") == f"/etc/nginx/media-writers/{app}"
        assert (arg(chunk, "user"), arg(chunk, "group"), arg(chunk, "mode")) == ("root", "www-data", "0640")
        assert arg(chunk, "show_changes") is False
        lines = [line for line in arg(chunk, "contents") if not line.startswith("#")]
        user, hashed = lines[0].split(":", 1)
        assert len(lines) == 1 and user == app and ssha_verifies(hashed, token_of(app))
    writers = highstate["nginx-media-writers-dir"]
    assert arg(writers, "clean") is True and arg(writers, "mode") == "0750"
    assert {"file": "nginx-media-writers-dir"} in arg(highstate["nginx-media-site"], "require")

    media = arg(highstate["nginx-media-site"], "context")["media"]
    text = call.cmd("slsutil.renderer", path="salt://nginx/files/media.conf.jinja",
                    default_renderer="jinja", saltenv="stack", media=media)
    dav = text[text.index(f"listen {media['dav_listen']}"):]
    # The address allow-list stays.
    assert re.findall(r"^\s+allow (\S+);", dav, re.M) == pillar["nginx"]["media"]["dav_allow"]
    locations = dict(re.findall(r"location ~ \^/(\w+)/\(static\|media\)/ \{(.*?)\}", dav, re.S))
    assert set(locations) == set(APPS["apps"])
    for app, body in locations.items():
        assert f"auth_basic_user_file /etc/nginx/media-writers/{app};" in body
        assert re.search(r"^\s+auth_basic \"", body, re.M) and "dav_methods PUT DELETE;" in body
        # Another app's user file appears in no other app's location.
        assert body.count("auth_basic_user_file") == 1
    # Reads on the public port ask for nothing.
    assert "auth_basic" not in text[:text.index(f"listen {media['dav_listen']}")]


def test_media_formula_refuses_a_site_without_a_hash(site):
    layout, host = "three-tier", "media1"
    site.use_layout(layout)
    call = caller(site, layout, host)
    no_hash = {"nginx": {"media": {"sites": {"demo": {"server_names": ["x"], "dav_password_hash": None}}}}}
    result = call.cmd("state.show_sls", "nginx.media", saltenv="stack", pillarenv="stack", pillar=no_hash)
    assert "nginx:media:sites:demo:dav_password_hash is required" in str(result)


def test_app_hosts_env_file_carries_the_credential_publish_reads_it(site):
    layout, host = "three-tier", "app1"
    site.use_layout(layout)
    call = caller(site, layout, host)
    highstate = call.cmd("state.show_highstate")
    for app in APPS["apps"]:
        chunk = highstate[f"django-{app}-env-file"]
        assert (arg(chunk, "user"), arg(chunk, "group"), arg(chunk, "mode")) == ("root", app, "0640")
        text = call.cmd("slsutil.renderer", path="salt://django/files/app.env.jinja", default_renderer="jinja",
                        saltenv="stack", app=arg(chunk, "context")["app"])
        assert f"DJANGO_MEDIA_WRITE_CREDENTIAL={app}:{token_of(app)}\n" in text
    # The leader publishes static files with it, from the env file (no secret on a command line).
    publish = highstate["django-demo-publish-static"]
    assert arg(publish, "env")["DJANGO_ENV_FILE"] == "/etc/django-apps/demo.env"
    assert token_of("demo") not in arg(publish, "name") + arg(publish, "unless")


def test_the_media_role_leaving_removes_the_credentials(site):
    """app1 never held media: nginx.media_clean is among what it retires."""
    layout, host = "three-tier", "app1"
    site.use_layout(layout)
    highstate = caller(site, layout, host).cmd("state.show_highstate")
    removed = highstate["nginx-media-writers-removed"]
    assert arg(removed, "name") == "/etc/nginx/media-writers"
    assert {"cmd": "nginx-reloaded-without-media-site"} in arg(removed, "require")

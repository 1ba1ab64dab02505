"""The formulas on their own (no stack pillar): the one map.jinja idiom, versions
per Debian release, clean states that need no pillar, django's vassal through
uwsgi's interface, and the env file matching djangostack's settings contract.

States render in-process (salt.client.Caller, state.show_sls) against
formulas/ and examples/apps with a hand-written pillar, the grains of the
release under test set in the minion config."""
import pathlib
import re

import pytest
import salt.client
import salt.config
import yaml

from tests.fast.conftest import arg

REPO = pathlib.Path(__file__).resolve().parents[2]
FORMULAS = REPO / "formulas"
NAMES = ["postgres", "memcached", "nginx", "uwsgi", "django"]
RELEASES = [12, 13]
CLEAN_STATES = ["postgres.clean", "memcached.clean", "uwsgi.clean", "django.clean",
                "nginx.media_clean", "nginx.loadbalancer_clean"]

PILLAR = {
    "postgres": {"listen_addresses": ["10.0.0.20"], "memory_mb": 512,
                 "users": {"demo": {"password": "pw"}}, "databases": {"demo": {"owner": "demo"}}},
    "memcached": {"listen": "10.0.0.20"},
    "django": {"apps": {"demo": {
        "source": {"salt": "salt://demo"},
        "settings_module": "demoproject.settings",
        "wsgi_module": "demoproject.wsgi",
        "secret_key": "s3cret=#x",
        "server_names": ["example.com"],
        "leader": True,
        "static_publish_urls": ["http://10.0.0.30:8081/demo/static/"],
        "uwsgi": {"socket": "10.0.0.11:8000", "processes": 3},
    }}},
}


class Minion:
    def __init__(self, root: pathlib.Path):
        self.root = root

    def show_sls(self, sls, pillar=None, release=12, os="Debian"):
        pillar_root = self.root / f"pillar-{release}-{os}"
        pillar_root.mkdir(exist_ok=True)
        (pillar_root / "top.sls").write_text("base:\n  '*':\n    - data\n")
        (pillar_root / "data.sls").write_text(yaml.safe_dump(pillar or {}))
        config = {
            "id": "formula-test",
            "file_client": "local",
            "cachedir": str(self.root / f"cache-{release}-{os}"),
            "pki_dir": str(self.root / "pki"),
            "log_file": str(self.root / "minion.log"),
            "log_level": "quiet",
            "pillar_safe_render_error": False,
            "file_roots": {"base": [str(FORMULAS), str(REPO / "examples" / "apps")]},
            "pillar_roots": {"base": [str(pillar_root)]},
            "grains": {"os": os, "osmajorrelease": release, "osrelease": str(release),
                       "num_cpus": 2, "mem_total": 4096},
        }
        path = self.root / f"minion-{release}-{os}"
        path.write_text(yaml.safe_dump(config))
        caller = salt.client.Caller(mopts=salt.config.minion_config(str(path)))
        return caller.cmd("state.show_sls", sls)


@pytest.fixture
def minion(tmp_path):
    return Minion(tmp_path)


def states(result):
    assert isinstance(result, dict), result
    return result


def test_every_formula_merges_the_same_three_layers_the_same_way():
    for name in NAMES:
        text = (FORMULAS / name / "map.jinja").read_text()
        assert f"import_yaml '{name}/defaults.yaml' as defaults" in text, name
        assert f"import_yaml '{name}/osmajorreleasemap.yaml' as releases" in text, name
        assert re.search(r"salt\['slsutil\.merge_all'\]\(\s*\[defaults\." + name + r", releases\[release\] or \{\}, "
                         r"salt\['pillar\.get'\]\('" + name + r"', \{\}\) or \{\}\],\s*"
                         r"strategy='recurse', merge_lists=False\)", text), name
        releases = yaml.safe_load((FORMULAS / name / "osmajorreleasemap.yaml").read_text())
        assert sorted(releases) == RELEASES, name


def test_no_formula_reads_another_formulas_defaults():
    for path in FORMULAS.rglob("*"):
        if path.suffix not in (".sls", ".jinja"):
            continue
        owner = path.relative_to(FORMULAS).parts[0]
        for other in re.findall(r"['\"](\w+)/(?:defaults|osmajorreleasemap)\.yaml['\"]", path.read_text()):
            assert other == owner, f"{path} reads {other}'s defaults"


@pytest.mark.parametrize("release, version", [(12, 15), (13, 17)])
def test_postgres_installs_the_releases_own_versioned_packages(minion, release, version):
    assert yaml.safe_load((FORMULAS / "postgres" / "osmajorreleasemap.yaml").read_text())[release]["version"] == version
    rendered = states(minion.show_sls("postgres", PILLAR, release))
    assert arg(rendered["postgres-packages-installed"], "pkgs") == [f"postgresql-{version}", f"postgresql-client-{version}"]
    assert arg(rendered["postgres-cluster-running"], "name") == f"postgresql@{version}-main"
    assert arg(rendered["postgres-settings"], "name") == f"/etc/postgresql/{version}/main/conf.d/50-salt.conf"


@pytest.mark.parametrize("release, pkgs", [(12, ["python3-venv", "python3-wheel-whl"]), (13, ["python3-venv"])])
def test_django_packages_per_release(minion, release, pkgs):
    rendered = states(minion.show_sls("django", PILLAR, release))
    assert arg(rendered["django-packages"], "pkgs") == pkgs


@pytest.mark.parametrize("sls", ["postgres", "memcached", "uwsgi", "nginx.media", "django", *CLEAN_STATES])
def test_an_unsupported_release_is_refused_by_name(minion, sls):
    for release, os in [(14, "Debian"), (24, "Ubuntu")]:
        result = minion.show_sls(sls, PILLAR, release, os)
        assert f"supports Debian 12 and 13 only; this host runs {os} {release}" in str(result), (sls, result)


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("sls", CLEAN_STATES)
def test_clean_states_need_no_pillar(minion, sls, release):
    rendered = states(minion.show_sls(sls, {}, release))
    assert rendered, sls


@pytest.mark.parametrize("sls", CLEAN_STATES)
def test_clean_states_render_with_a_partial_pillar(minion, sls):
    """A host that lost a role may still carry site-wide settings for it (the
    lab's pip and memory overrides reach every host): retiring never checks them."""
    partial = {"django": {"apps": {"demo": {"pip": {"no_index": True}}}}, "postgres": {"memory_mb": 512},
               "memcached": {"memory_mb": 64}, "nginx": {"media": {"root": "/srv/media"}}}
    assert states(minion.show_sls(sls, partial, 13)), sls


def test_postgres_clean_never_removes_data_or_packages(minion):
    rendered = states(minion.show_sls("postgres.clean", {}, 13))
    modules = {key for state in rendered.values() for key in state if not key.startswith("__")}
    assert modules <= {"file", "cmd", "service"}
    for state in rendered.values():
        assert [item for item in state.get("file", []) if isinstance(item, str)] in ([], ["replace"]), state
    assert arg(rendered["postgres-cluster-stopped"], "name") == "postgresql@17-main"


def test_django_writes_its_vassal_through_the_uwsgi_interface(minion):
    for path in (FORMULAS / "django").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "uwsgi-vassals-dir" not in text and "salt://uwsgi/" not in text, path
            assert "uwsgi/map.jinja" not in text, path
    rendered = states(minion.show_sls("django", PILLAR, 12))
    vassal = rendered["uwsgi-vassal-demo"]
    assert arg(vassal, "name") == "/etc/uwsgi-emperor/vassals/demo.ini"
    context = arg(vassal, "context")
    assert context["owner"] == "django"
    options = context["options"]
    assert options["processes"] == 3 and options["socket"] == "10.0.0.11:8000"
    assert options["env"] == ["LANG=C.UTF-8", "DJANGO_ENV_FILE=/etc/django-apps/demo.env",
                              "DJANGO_SETTINGS_MODULE=demoproject.settings"]
    required = arg(vassal, "require")
    assert {"cmd": "django-demo-migrate"} in required and {"cmd": "django-demo-publish-static"} in required
    reload_on = arg(rendered["uwsgi-vassal-demo-reload-pending"], "onchanges")
    assert {"file": "django-demo-env-file"} in reload_on and {"file": "django-demo-source"} in reload_on


def test_env_file_variables_are_djangostacks_settings_contract():
    template = (FORMULAS / "django" / "files" / "app.env.jinja").read_text()
    written = set(re.findall(r"'(DJANGO_[A-Z_]+)':", template))
    assert "DJANGO_SECRET_KEY" in written
    settings = (REPO / "djangostack" / "src" / "djangostack" / "settings.py").read_text()
    readme = (REPO / "djangostack" / "README.md").read_text()
    for name in sorted(written):
        assert f'"{name}"' in settings, f"{name}: written by the formula, not read by djangostack.settings"
        assert f"| `{name}` |" in readme, f"{name}: not in djangostack/README.md's contract"

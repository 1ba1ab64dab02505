"""Fast suite: real Salt rendering of pillar and states, no containers.

Each layout is rendered the way the lab's master renders it: environment
`stack`, a site pillar root (topology, apps, test secrets) in front of the
repo's.
Pillar and highstates render in-process through Salt's own API (salt.pillar,
salt.client.Caller): a test can swap the topology or the secrets between two
renders and read the values unmasked, hundreds of renders in seconds. The
orchestration renders on a real salt-master's CLI from pytest-salt-factories
(``master`` below), as `salt-run` does on a master.
"""
import copy
import pathlib

import json

import pytest
import salt.config
import salt.pillar
import yaml

from tests.layouts import EXAMPLE_APPS, LAYOUTS, LAYOUTS_DIR, load_layout  # noqa: F401  (re-exported)

REPO = pathlib.Path(__file__).resolve().parents[2]
# Strong enough for the pillar's check (stackpillar.site.secret), and
# recognisable in rendered output.
PATRONI_SECRETS = {"replication": "test-replication-password", "rewind": "test-rewind-password",
                   "restapi": "test-restapi-password"}
# The shape of pillar/examples/secrets.sls.example.
SECRETS = {
    "secrets": {
        "django": {"demo": {"secret_key": "test-secret-key-of-the-fast-suite-0123456789-abcdefghij"}},
        "postgres": {"users": {"demo": "test-db-password-demo"}},
        "mail": {"demo": "test-mail-password-demo"},
        "patroni": PATRONI_SECRETS,
        "pgbackrest": {"tls_seed": "test-tls-seed-of-the-fast-suite"},
    }
}


ENV = "stack"


def roots(site):
    """file_roots and pillar_roots as on the lab's master (README's master config)."""
    return {
        "file_roots": {ENV: [str(REPO / "salt"), str(REPO / "formulas"), str(REPO / "examples" / "apps")]},
        "pillar_roots": {ENV: [str(site), str(REPO / "pillar")]},
    }


class Renderer:
    """Renders pillar and highstate for any minion id against a pillar root."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.pillar_root = root / "site"
        self.pillar_root.mkdir(parents=True, exist_ok=True)
        self.write_secrets(SECRETS)
        self.write("apps.sls", EXAMPLE_APPS.read_text())

    def use_layout(self, name):
        self.write("topology.sls", (LAYOUTS_DIR / f"{name}.sls").read_text())

    def use_topology(self, topology: dict):
        self.write("topology.sls", yaml.safe_dump({"topology": topology}))

    def write_secrets(self, data):
        self.write("secrets.sls", yaml.safe_dump(data))

    def write(self, name, text):
        (self.pillar_root / name).write_text(text)

    def opts(self, minion_id, address=None):
        # A config file, not in-memory opts: Salt re-reads static grains from it.
        config = {
            "id": minion_id,
            "file_client": "local",
            "cachedir": str(self.root / "cache"),
            "pki_dir": str(self.root / "pki"),
            "log_file": str(self.root / "minion.log"),
            "log_level": "quiet",
            # As on the master (see README): the operator sees which key is wrong.
            "pillar_safe_render_error": False,
            **roots(self.pillar_root),
            # Grains as the host itself would report them.
            "grains": {"id": minion_id, "ipv4": ["127.0.0.1"] + ([address] if address else []),
                       "num_cpus": 2, "mem_total": 4096,
                       # The default lab release, whatever machine runs the tests.
                       "os": "Debian", "os_family": "Debian", "osmajorrelease": 13, "oscodename": "trixie"},
        }
        path = self.root / "conf" / minion_id / "minion"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        return salt.config.minion_config(str(path))

    def pillar(self, minion_id, address=None):
        opts = self.opts(minion_id, address)
        compiled = salt.pillar.get_pillar(opts, copy.deepcopy(opts["grains"]), minion_id,
                                          saltenv=ENV, pillarenv=ENV).compile_pillar()
        return _plain(compiled)

    def highstate(self, minion_id, address):
        import salt.client
        caller = salt.client.Caller(mopts=self.opts(minion_id, address))
        return caller.cmd("state.show_highstate")


def _plain(value):
    """Salt 3008 wraps pillar values to redact them in output; tests want plain data."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


@pytest.fixture(scope="session", autouse=True)
def quiet_salt_logging():
    """Salt buffers early log records and flushes them at exit onto pytest's
    closed stream; drop that buffer once the session ends."""
    yield
    from salt._logging import impl
    impl.shutdown_temp_handler()


@pytest.fixture
def renderer(tmp_path):
    return Renderer(tmp_path)


class Master:
    """A salt-master configured like the lab's (repo roots, a lab pillar root in
    front), driven through pytest-salt-factories' salt-run CLI wrapper."""

    def __init__(self, factory, renderer):
        self.factory, self.renderer = factory, renderer

    def orchestrate_steps(self, sls="orchestrate.deploy"):
        ret = self.factory.salt_run_cli(timeout=120).run("state.orchestrate_show_sls", sls,
                                                         f"saltenv={ENV}", f"pillarenv={ENV}")
        assert ret.returncode == 0, ret.stderr
        (steps,) = ret.data.values()
        assert isinstance(steps, dict), json.dumps(ret.data)[:2000]
        return steps


@pytest.fixture(scope="session")
def master(salt_factories, tmp_path_factory):
    renderer = Renderer(tmp_path_factory.mktemp("master"))
    factory = salt_factories.salt_master_daemon("fast-master", overrides={
        **roots(renderer.pillar_root),
        "pillar_safe_render_error": False,
    })
    return Master(factory, renderer)


def arg(chunk, key, default=KeyError):
    """The value of ``key`` among a rendered state's arguments (``default``
    when it has none; KeyError without one)."""
    for module, args in chunk.items():
        if module.startswith("__"):
            continue
        for item in args:
            if isinstance(item, dict) and key in item:
                return item[key]
    if default is KeyError:
        raise KeyError(key)
    return default

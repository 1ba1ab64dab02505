"""Fixtures for the lab suite: real multi-host labs of systemd containers.

Writing a lab test module
-------------------------
Mark the module with its layout; the session brings that lab up (fresh hosts)
on a Debian release (default trixie; ``release="bookworm"`` for Debian 12,
$STACKLAB_RELEASE changes the default) and runs the full deploy
(``salt-run state.orchestrate orchestrate.deploy saltenv=stack pillarenv=stack``)
once, then every module marked with the same layout and release shares it::

    import pytest

    pytestmark = pytest.mark.layout("three-tier")   # deploy=False: up only; release="bookworm"

    def test_site_answers(lab):
        r = lab.exec("lb1", "curl -ksS -o /dev/null -w '%{http_code}' https://127.0.0.1/")
        assert r.stdout == "200"

    def test_second_deploy_changes_nothing(lab):
        assert lab.run_orchestrate().changed == {h: 0 for h in lab.hosts}

    def test_nginx_runs(hosts):
        assert hosts["lb1"].service("nginx").is_running

Layouts are names in pillar/examples/layouts/ (else tests/lab/topologies/) or
paths. Layouts share a subnet, so one runs at a time: modules are regrouped by
layout and release at collection, and switching tears the previous lab down.
The last lab is torn down at the end of the session (unless STACKLAB_KEEP=1).
If the bring-up or deploy of a layout fails, every test using it errors with
the reason, without retrying.

Every lab also runs ``lab.outsider`` (minion id ``outsider``), a minion the
topology does not name, whose only states come from the master's ``base``
environment (stacklab/lab-base: its own top file, one file.managed of
/etc/outsider-was-here). The stack lives in the ``stack`` environment, so a
highstate must leave the outsider exactly that::

    def test_the_stack_leaves_other_minions_alone(lab):
        lab.highstate()
        assert lab.state_ids(lab.outsider) == lab.outsider_state_ids   # ["outsider-was-here"]

Fixtures
--------
``lab``       (module) the module's :class:`stacklab.lab.Lab`, up and deployed.
``hosts``     (module) {minion id: testinfra Host} (docker backend), for all
              lab hosts; also ``lab.host(id)``.
``lab_topology`` (function) ``lab_topology(yaml_text)`` replaces the lab's
              topology.sls (e.g. a role moved to another host; hosts must be
              lab hosts); restored after the test.
``lab_secrets`` (function) ``lab_secrets(yaml_text)`` replaces the lab's
              secrets.sls (mode 0600, e.g. the example's placeholders); the
              generated one is restored after the test.
``lab_session`` (session) the manager: ``lab_session.get(layout, deploy=True,
              release=None)``, ``lab_session.release()`` (tear down the current lab).

The Lab API (see stacklab/lab.py)
---------------------------------
``lab.hosts``                      topology minion ids, in topology order (FQDNs allowed)
``lab.minions``                    ``lab.hosts`` plus ``lab.outsider``: every minion of the master
``lab.outsider``                   ``"outsider"``: the minion outside the topology
``lab.outsider_state_ids``         its states from the lab's base env: ["outsider-was-here"]
``lab.release``                    Debian release of every container ("trixie", "bookworm")
``lab.name``                       layout name; ``lab.container(h)`` is stacklab-<name>-<h>
``lab.topology``                   checked topology (``.hosts[id].roles/.address/.options``,
                                   ``.registry``: pillar/roles.yaml, ``.published_ports(id)``)
``lab.site_dir``                   the lab's site pillar root, .lab/<layout>/site (master:
                                   /srv/site): topology.sls, apps.sls, secrets.sls, overrides.sls
``lab.address(host)``              private address (``"salt"``: the master; also outsider)
``lab.url`` / ``lab.urls``         published port 80 URL(s) (roles.<role>.lab.publish in the
                                   registry: the load balancers), https://127.0.0.1:8081/
``lab.salt(*args)``                ``salt --out=json --static ARGS`` on the master -> dict
                                   e.g. ``lab.salt("*", "test.ping")`` -> {"app1": True, ...,
                                   "outsider": True}
``lab.salt_run(*args)``            ``salt-run --out=json ARGS`` -> parsed JSON
``lab.pillar(host)``               a host's compiled pillar, unmasked (Salt 3008 masks
                                   ``pillar.items`` output by default)
``lab.run_orchestrate(sls="orchestrate.deploy", check=True)`` -> OrchestrateResult
                                   run with saltenv=stack pillarenv=stack
                                   (``.ok``, ``.changed`` {host: changed states, every host},
                                   ``.failures``, ``.raw``); raises LabError on failure
``lab.highstate(check=True)``      ``salt '*' state.apply`` -> {topology host: changed states};
                                   every minion must return (the outsider too); raises
                                   LabError listing failed states of any minion
``lab.last_highstate``             the raw JSON of the last highstate, per minion
``lab.state_ids(minion)``          state ids in a minion's part of the last highstate
                                   (run order); raises LabError on a render error
``lab.exec(host, cmd, check=False, timeout=600)`` -> CompletedProcess (text);
                                   a str runs through ``sh -c``; host may be ``"salt"``
``lab.host(id)``                   testinfra Host
``lab.set_topology(text)`` / ``lab.restore_topology()``
``lab.container(host)``            docker container name (stacklab-<layout>-<host>)
``lab.up(replace=False, fresh=False)`` / ``lab.down()`` / ``lab.status()``

Why not pytest-salt-factories here: its daemons run salt processes as the
entry point of plain containers (no systemd as PID 1, so no real services to
test), built from its own images, with its root dir bind-mounted, driven
through the docker SDK; its CLI wrappers run salt locally with a
``--config-dir``. The lab needs systemd hosts from our own images, a master
whose roots are the repo, and the salt CLI run inside the master container --
so it drives docker itself (stacklab) and salt-factories is used only where it
fits: local salt-call rendering in tests/conftest.py (``salt_call_local``).
"""

from __future__ import annotations

import os

import pytest

from stacklab.config import check_release
from stacklab.lab import Lab
from stacklab.site import write_atomic
from stacklab.util import LabError


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: left out of `./lab test` (and CI); run by `./lab test slow`")
    config.addinivalue_line(
        "markers",
        "layout(name, deploy=True, release='trixie'): the lab layout a module's tests run "
        "against, on a Debian release (deploy: run orchestrate.deploy once after up)",
    )


def _layout_of(item) -> str | None:
    m = item.get_closest_marker("layout")
    if not (m and m.args):
        return None
    return f"{m.args[0]}@{m.kwargs.get('release') or check_release(None)}"


def pytest_collection_modifyitems(session, config, items):
    """Group tests by layout (stable) so each lab comes up once per session."""
    first: dict[str, int] = {}
    keys = []
    for i, item in enumerate(items):
        layout = _layout_of(item)
        group = f"layout:{layout}" if layout else f"module:{item.module.__name__ if item.module else i}"
        first.setdefault(group, i)
        keys.append(first[group])
    order = sorted(range(len(items)), key=lambda i: (keys[i], i))
    items[:] = [items[i] for i in order]


class LabSession:
    """One lab at a time for the whole session."""

    def __init__(self, say):
        self.say = say
        self.current: Lab | None = None
        self.deployed = False
        self.failed: dict[str, str] = {}

    def get(self, layout: str, deploy: bool = True, release: str | None = None) -> Lab:
        key = f"{layout}@{release or check_release(None)}"
        if key in self.failed:
            pytest.fail(f"lab {key} failed earlier in this session:\n{self.failed[key]}",
                        pytrace=False)
        try:
            lab = self.current
            wanted = Lab(layout, release=release)
            if lab is None or (lab.name, lab.release) != (wanted.name, wanted.release):
                self.release()
                lab = Lab(layout, release=release, out=self.say)
                self.say(f"\n=== lab {lab.name} ({lab.release}): up (fresh hosts) ===")
                # Current before up(): whatever a failed up leaves is torn down too.
                self.current, self.deployed = lab, False
                # STACKLAB_REUSE=1 (development only): keep a lab of this
                # layout that is up, deployed as it is, instead of fresh hosts.
                reuse = os.environ.get("STACKLAB_REUSE") == "1"
                lab.up(replace=True, fresh=not reuse)
                self.deployed = reuse
            if deploy and not self.deployed:
                self.say(f"=== lab {lab.name}: deploy ===")
                lab.run_orchestrate()
                self.deployed = True
            return lab
        except LabError as exc:
            self.failed[key] = str(exc)
            pytest.fail(f"lab {key}: {exc}", pytrace=False)

    def release(self) -> None:
        if self.current is not None:
            self.say(f"=== lab {self.current.name}: down ===")
            try:
                self.current.down()
            finally:
                self.current, self.deployed = None, False


@pytest.fixture(scope="session")
def lab_session(say):
    mgr = LabSession(say)
    yield mgr
    if os.environ.get("STACKLAB_KEEP") == "1":
        if mgr.current:
            say(f"STACKLAB_KEEP=1: lab {mgr.current.name} left up")
        return
    mgr.release()


@pytest.fixture(scope="module")
def lab(request, lab_session) -> Lab:
    marker = request.node.get_closest_marker("layout")
    if marker is None or not marker.args:
        raise pytest.UsageError(
            f"{request.node.nodeid}: mark the module, e.g. pytestmark = pytest.mark.layout('three-tier')")
    return lab_session.get(marker.args[0], deploy=marker.kwargs.get("deploy", True),
                           release=marker.kwargs.get("release"))


@pytest.fixture(scope="module")
def hosts(lab) -> dict:
    return {h: lab.host(h) for h in lab.hosts}


@pytest.fixture
def lab_topology(lab):
    used = []

    def _set(yaml_text: str, joining=()) -> None:
        lab.set_topology(yaml_text, joining)
        used.append(True)

    yield _set
    if used:
        lab.restore_topology()


@pytest.fixture
def lab_secrets(lab):
    path = lab.site_dir / "secrets.sls"
    saved = path.read_text()
    used = []

    def _set(yaml_text: str) -> None:
        write_atomic(path, yaml_text, 0o600)
        used.append(True)

    yield _set
    if used:
        write_atomic(path, saved, 0o600)

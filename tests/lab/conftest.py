"""Fixtures for the lab suite: real multi-host labs of systemd containers.

Writing a lab test module
-------------------------
Mark the module with its layout; the session brings that lab up (fresh hosts)
and runs the full deploy (``salt-run state.orchestrate orchestrate.deploy``)
once, then every module marked with the same layout shares it::

    import pytest

    pytestmark = pytest.mark.layout("three-tier")   # deploy=False: up only

    def test_site_answers(lab):
        r = lab.exec("lb1", "curl -fsS -o /dev/null -w '%{http_code}' http://127.0.0.1/")
        assert r.stdout == "200"

    def test_second_deploy_changes_nothing(lab):
        assert lab.run_orchestrate().changed == {h: 0 for h in lab.hosts}

    def test_nginx_runs(hosts):
        assert hosts["lb1"].service("nginx").is_running

Layouts are names in pillar/layouts/ (else tests/lab/topologies/) or paths.
Layouts share a subnet, so one runs at a time: modules are regrouped by layout
at collection, and switching layouts tears the previous lab down. The last lab
is torn down at the end of the session (unless STACKLAB_KEEP=1). If the
bring-up or deploy of a layout fails, every test using it errors with the
reason, without retrying.

Fixtures
--------
``lab``       (module) the module's :class:`stacklab.lab.Lab`, up and deployed.
``hosts``     (module) {minion id: testinfra Host} (docker backend), for all
              lab hosts; also ``lab.host(id)``.
``lab_topology`` (function) ``lab_topology(yaml_text)`` replaces the lab's
              topology.sls (e.g. a role moved to another host; hosts must be
              lab hosts); restored after the test.
``lab_session`` (session) the manager: ``lab_session.get(layout, deploy=True)``,
              ``lab_session.release()`` (tear down the current lab).

The Lab API (see stacklab/lab.py)
---------------------------------
``lab.hosts``                      minion ids in topology order
``lab.topology``                   parsed topology (``.hosts[id].roles/.address``)
``lab.address(host)``              private address (``"salt"``: the master)
``lab.url`` / ``lab.urls``         published load balancer URL(s), http://127.0.0.1:8080/
``lab.salt(*args)``                ``salt --out=json --static ARGS`` on the master -> dict
                                   e.g. ``lab.salt("*", "test.ping")`` -> {"app1": True, ...}
``lab.salt_run(*args)``            ``salt-run --out=json ARGS`` -> parsed JSON
``lab.pillar(host)``               a host's compiled pillar, unmasked (Salt 3008 masks
                                   ``pillar.items`` output by default)
``lab.run_orchestrate(sls="orchestrate.deploy", check=True)`` -> OrchestrateResult
                                   (``.ok``, ``.changed`` {host: changed states, every host},
                                   ``.failures``, ``.raw``); raises LabError on failure
``lab.highstate(check=True)``      ``salt '*' state.apply`` -> {host: changed states};
                                   raises LabError listing failed states
``lab.exec(host, cmd, check=False, timeout=600)`` -> CompletedProcess (text);
                                   a str runs through ``sh -c``; host may be ``"salt"``
``lab.host(id)``                   testinfra Host
``lab.set_topology(text)`` / ``lab.restore_topology()``
``lab.container(host)``            docker container name (stacklab-<layout>-<host>)

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

from stacklab.lab import Lab
from stacklab.util import LabError


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "layout(name, deploy=True): the lab layout a module's tests run against "
        "(deploy: run orchestrate.deploy once after up)",
    )


def _layout_of(item) -> str | None:
    m = item.get_closest_marker("layout")
    return m.args[0] if m and m.args else None


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

    def get(self, layout: str, deploy: bool = True) -> Lab:
        if layout in self.failed:
            pytest.fail(f"lab {layout} failed earlier in this session:\n{self.failed[layout]}",
                        pytrace=False)
        try:
            lab = self.current
            if lab is None or lab.name != Lab(layout).name:
                self.release()
                lab = Lab(layout, out=self.say)
                self.say(f"\n=== lab {lab.name}: up (fresh hosts) ===")
                # Current before up(): whatever a failed up leaves is torn down too.
                self.current, self.deployed = lab, False
                lab.up(replace=True, fresh=True)
            if deploy and not self.deployed:
                self.say(f"=== lab {lab.name}: deploy ===")
                lab.run_orchestrate()
                self.deployed = True
            return lab
        except LabError as exc:
            self.failed[layout] = str(exc)
            pytest.fail(f"lab {layout}: {exc}", pytrace=False)

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
    return lab_session.get(marker.args[0], deploy=marker.kwargs.get("deploy", True))


@pytest.fixture(scope="module")
def hosts(lab) -> dict:
    return {h: lab.host(h) for h in lab.hosts}


@pytest.fixture
def lab_topology(lab):
    used = []

    def _set(yaml_text: str) -> None:
        lab.set_topology(yaml_text)
        used.append(True)

    yield _set
    if used:
        lab.restore_topology()

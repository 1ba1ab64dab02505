"""Shared test helpers for both suites.

Fixtures
--------
``repo``            Path of the repository root.
``say``             say(line): print a line live, past pytest's output capture
                    (progress of long lab steps; timing results).
``record_timing``   record_timing(label, seconds): printed in the session's
                    terminal summary ("stacklab timings").
``salt_call_local`` salt_call_local(minion_id, layout="three-tier") -> a
                    pytest-salt-factories ``SaltCall`` CLI wrapper that runs
                    ``salt-call --local`` on this machine with the repo's
                    salt/ + formulas/ as file_roots and the lab's pillar roots
                    (the lab-generated pillar dir first, then pillar/), so a
                    fast test renders pillar and states exactly as a lab host
                    with that minion id would -- without containers::

                        cli = salt_call_local("app1", layout="three-tier")
                        ret = cli.run("pillar.items")
                        assert ret.returncode == 0, ret.stderr
                        pillar = ret.data
                        ret = cli.run("state.show_sls", "django")

pytest-salt-factories serves here: it writes a minion config into its own
root dir and wraps the salt-call CLI (JSON parsing, timeouts). Its daemons are
not used for the lab: see tests/lab/conftest.py for why.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TIMINGS_KEY = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[TIMINGS_KEY] = []
    # salt-factories logs its manager's repr as a WARNING; Salt's deferred
    # log handler then flushes it at exit into pytest's closed capture file
    # ("--- Logging error ---"). Nothing to warn about: drop it.
    logging.getLogger("saltfactories.manager").setLevel(logging.ERROR)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    timings = config.stash.get(TIMINGS_KEY, [])
    if timings:
        terminalreporter.section("stacklab timings")
        for label, seconds in timings:
            terminalreporter.write_line(f"{label:60} {seconds:8.1f}s")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def say(pytestconfig):
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")

    def _say(line: str) -> None:
        if capman is not None:
            with capman.global_and_fixture_disabled():
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
        else:
            print(line, file=sys.stderr, flush=True)

    return _say


@pytest.fixture(scope="session")
def record_timing(pytestconfig, say):
    def _record(label: str, seconds: float) -> None:
        pytestconfig.stash[TIMINGS_KEY].append((label, seconds))
        say(f"TIMING {label}: {seconds:.1f}s")

    return _record


@pytest.fixture(scope="session")
def salt_factories_config(tmp_path_factory):
    # salt-factories' configs and scripts go into this session's tmp dir
    # (its default root is /tmp itself).
    return {"root_dir": tmp_path_factory.mktemp("salt-factories")}


@pytest.fixture(scope="session")
def salt_call_local(salt_factories, tmp_path_factory):
    from stacklab.config import Settings
    from stacklab.lab import write_lab_pillar
    from stacklab.topology import load

    made: dict[tuple[str, str], object] = {}
    settings = Settings.from_env()

    def _factory(minion_id: str, layout: str = "three-tier"):
        key = (layout, minion_id)
        if key not in made:
            topo = load(layout, settings.layout_dirs)
            pillar_dir = tmp_path_factory.mktemp(f"lab-pillar-{topo.name}")
            if topo.path.parent == (REPO / "pillar" / "layouts").resolve():
                write_lab_pillar(pillar_dir, f"{{% include 'layouts/{topo.name}.sls' %}}\n")
            else:
                write_lab_pillar(pillar_dir, topo.text)
            minion = salt_factories.salt_minion_daemon(
                f"{topo.name}-{minion_id}",   # the factory's name; the minion id is below
                overrides={
                    "id": minion_id,
                    "file_client": "local",
                    "file_roots": {"base": [str(REPO / "salt"), str(REPO / "formulas")]},
                    "pillar_roots": {"base": [str(pillar_dir), str(REPO / "pillar")]},
                },
            )
            made[key] = minion.salt_call_cli(timeout=300)
        return made[key]

    return _factory

"""Shared test helpers for both suites.

Fixtures
--------
``repo``            Path of the repository root.
``say``             say(line): print a line live, past pytest's output capture
                    (progress of long lab steps; timing results).
``record_timing``   record_timing(label, seconds): printed in the session's
                    terminal summary ("stacklab timings").
``salt_factories_config``  keeps pytest-salt-factories' files in this
                    session's tmp dir (tests/fast uses it for a local
                    salt-master's CLI; the lab does not: see tests/lab/conftest.py).
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

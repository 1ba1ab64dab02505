"""`./lab` installs the Docker engine when `dockerd` is absent, whatever
`docker` client the machine has (its image ships a client without an engine).

`./lab packages` prints what bootstrap would install and installs nothing;
it runs here with a PATH holding only fake tools, so the machine's own
binaries cannot decide the answer.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BASH = shutil.which("bash") or "/bin/bash"


def _fake(bindir: Path, name: str, body: str = 'echo "Docker version 28.2.2, build e6534b4"') -> None:
    path = bindir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def bindir(tmp_path):
    """A PATH with a fake docker client and the one tool ./lab needs first (dirname)."""
    d = tmp_path / "bin"
    d.mkdir()
    _fake(d, "docker")
    os.symlink(shutil.which("dirname"), d / "dirname")
    return d


def _would_install(bindir: Path) -> list[str]:
    r = subprocess.run([BASH, str(REPO / "lab"), "packages"], env={"PATH": str(bindir), "HOME": str(bindir)},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_a_docker_client_without_dockerd_installs_docker_io(bindir):
    assert "docker.io" in _would_install(bindir)


def test_dockerd_present_installs_no_engine(bindir):
    _fake(bindir, "dockerd", "exit 0")
    assert "docker.io" not in _would_install(bindir)


def test_the_other_tools_follow_the_same_rule(bindir):
    assert {"debootstrap", "wrk", "vagrant"} <= set(_would_install(bindir))
    _fake(bindir, "debootstrap", "exit 0")
    _fake(bindir, "wrk", "exit 0")
    _fake(bindir, "vagrant", "exit 0")
    _fake(bindir, "dockerd", "exit 0")
    assert _would_install(bindir) == []


def test_packages_installs_nothing(bindir):
    """No apt-get, sudo or pip is reached: a fake apt-get that records calls is never run."""
    log = bindir.parent / "apt.log"
    for tool in ("apt-get", "sudo", "python3"):
        _fake(bindir, tool, f'echo "{tool} $*" >> {log}; exit 1')
    _would_install(bindir)
    assert not log.exists()

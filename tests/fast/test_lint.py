"""salt-lint on every state and pillar file, yamllint on every pure-YAML file."""
import pathlib
import subprocess
import sys

from conftest import REPO

BIN = pathlib.Path(sys.executable).parent


def tracked(pattern):
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", pattern],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return out.split()


def test_salt_lint_clean():
    files = tracked("*.sls")
    assert files
    result = subprocess.run([BIN / "salt-lint", *files], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_clean():
    result = subprocess.run([BIN / "yamllint", "--strict", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

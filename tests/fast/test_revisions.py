"""A git branch or tag resolved to one commit per ordered deploy
(pillar/stackpillar/revisions.py): against a real repository, with git."""
import subprocess

import pytest

import stackpillar
from stackpillar.revisions import commit_of



def git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "demo.git"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    git(path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "one")
    git(path, "tag", "-a", "v1", "-m", "v1")
    return path


def ls_remote(url):
    proc = subprocess.run(["git", "ls-remote", "--", url], capture_output=True, text=True)
    if proc.returncode:
        raise OSError(proc.stderr.strip())
    return proc.stdout


def apps(url, rev):
    return {"demo": {"source": {"git": url, "rev": rev}}, "other": {"source": {"salt": "salt://other"}}}


def test_a_branch_a_tag_and_head_become_the_commit_they_name(repo):
    first = git(repo, "rev-parse", "HEAD")
    for rev in ("main", "v1", None, "HEAD", "refs/heads/main"):
        assert stackpillar.pinned_revisions(apps(str(repo), rev), ls_remote) == {"demo": first}, rev
    # A branch that moves: the next deploy gets the new commit.
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "two")
    second = git(repo, "rev-parse", "HEAD")
    assert stackpillar.pinned_revisions(apps(str(repo), "main"), ls_remote) == {"demo": second}
    assert stackpillar.pinned_revisions(apps(str(repo), "v1"), ls_remote) == {"demo": first}
    # A commit is already pinned; salt:// sources have nothing to pin.
    assert stackpillar.pinned_revisions(apps("/nowhere", first), ls_remote) == {}
    assert stackpillar.pinned_pillar({"demo": second}) == {"django": {"apps": {"demo": {"source": {"rev": second}}}}}


def test_a_rev_the_repository_lacks_or_an_unreachable_one_names_the_key(repo):
    with pytest.raises(stackpillar.TopologyError) as err:
        stackpillar.pinned_revisions(apps(str(repo), "nosuchbranch"), ls_remote)
    assert "apps:demo:source:rev" in str(err.value) and "'nosuchbranch' is no branch or tag" in str(err.value)
    with pytest.raises(stackpillar.TopologyError) as err:
        stackpillar.pinned_revisions(apps(str(repo.parent / "missing.git"), "main"), ls_remote)
    assert "apps:demo:source:rev" in str(err.value) and "could not be resolved to a commit on the master" in str(err.value)


def test_an_annotated_tag_is_its_commit_not_the_tag_object():
    out = ("1" * 40 + "\trefs/tags/v1\n" + "2" * 40 + "\trefs/tags/v1^{}\n" + "3" * 40 + "\tHEAD\n")
    assert commit_of(out, "v1") == "2" * 40
    assert commit_of(out, None) == "3" * 40
    assert commit_of(out, "v2") is None

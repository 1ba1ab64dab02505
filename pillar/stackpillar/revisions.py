"""One commit per app per deploy: an app whose git source names a branch or
a tag (apps:<app>:source:rev) is resolved to a commit once, when the ordered
deploy starts, and every app host checks out that commit. Without this the
leader could migrate one commit while a host deployed a minute later checks
out a branch that moved meanwhile.

The ordered deploy (salt/orchestrate/deploy.sls) asks `git ls-remote` on the
master and passes the commits as pillar to the app steps.
"""
import re

from .errors import TopologyError

COMMIT = re.compile(r"^[0-9a-f]{40}$")


def refs_wanted(rev):
    """The ls-remote ref names ``rev`` may be, best first (a tag's peeled
    commit before the tag object)."""
    if rev in (None, "", "HEAD"):
        return ["HEAD"]
    if rev.startswith("refs/"):
        return [f"{rev}^{{}}", rev]
    return [f"refs/heads/{rev}", f"refs/tags/{rev}^{{}}", f"refs/tags/{rev}"]


def commit_of(ls_remote_output, rev):
    """The commit ``rev`` names in `git ls-remote` output, or None."""
    refs = {}
    for line in ls_remote_output.splitlines():
        sha, _, ref = line.partition("\t")
        if COMMIT.match(sha):
            refs[ref.strip()] = sha
    return next((refs[r] for r in refs_wanted(rev) if r in refs), None)


def pinned_revisions(apps, ls_remote):
    """{app: commit} for every checked app (check_apps) with a git source
    whose rev is not a commit already. ``ls_remote(url)`` returns
    `git ls-remote URL` output, or raises OSError (with git's message)."""
    pins = {}
    for name, spec in apps.items():
        source = spec.get("source") or {}
        url, rev = source.get("git"), source.get("rev")
        if not url or (rev and COMMIT.match(rev)):
            continue
        key = f"apps:{name}:source:rev"
        try:
            output = ls_remote(url)
        except OSError as exc:
            raise TopologyError(key, f"{rev or 'HEAD'} of {url} could not be resolved to a commit on the "
                                f"master (git ls-remote: {exc}); give a commit, or let the master reach "
                                "the repository (and install git there)") from None
        commit = commit_of(output, rev)
        if commit is None:
            raise TopologyError(key, f"{rev!r} is no branch or tag of {url} (git ls-remote on the master)")
        pins[name] = commit
    return pins


def pinned_pillar(pins):
    """The pillar the app steps get: django:apps:<app>:source:rev."""
    return {"django": {"apps": {name: {"source": {"rev": commit}} for name, commit in pins.items()}}} if pins else {}

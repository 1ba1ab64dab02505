"""Where the lab keeps things; Debian releases; environment overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .util import LabError

REPO = Path(__file__).resolve().parent.parent
SALT_VERSION = "3008.3"  # the newest 3008 whose dependencies resolve here (see requirements.txt)

# Debian releases a lab can run on; each has its own images and wheelhouses.
RELEASES = ("trixie", "bookworm")
DEFAULT_RELEASE = "trixie"


def check_release(release: str | None) -> str:
    """``release`` (or $STACKLAB_RELEASE, else the default), checked."""
    release = release or os.environ.get("STACKLAB_RELEASE") or DEFAULT_RELEASE
    if release not in RELEASES:
        raise LabError(f"unknown release {release!r}; known: {', '.join(RELEASES)}")
    return release


@dataclass
class Settings:
    repo: Path = REPO
    cache_dir: Path = Path()
    image_prefix: str = "stacklab"
    state_dir: Path = Path()   # .lab/ in the repo: per-layout site pillar root, keys

    @classmethod
    def from_env(cls, cache_dir: str | Path | None = None, image_prefix: str | None = None,
                 repo: Path | None = None) -> "Settings":
        repo = Path(repo or REPO)
        cache = cache_dir or os.environ.get("STACKLAB_CACHE") or Path.home() / ".cache" / "stacklab"
        prefix = image_prefix or os.environ.get("STACKLAB_IMAGE_PREFIX") or "stacklab"
        return cls(repo=repo, cache_dir=Path(cache).expanduser().resolve(),
                   image_prefix=prefix, state_dir=repo / ".lab")

    @property
    def layout_dirs(self) -> list[Path]:
        """Where a layout name is looked up: the example layouts, then the lab's own."""
        return [self.repo / "pillar" / "examples" / "layouts", self.repo / "tests" / "lab" / "topologies"]

    @property
    def pillar_lib(self) -> Path:
        """The directory holding the stackpillar package (and roles.yaml)."""
        return self.repo / "pillar"

    @property
    def registry_file(self) -> Path:
        return self.repo / "pillar" / "roles.yaml"

    def wheelhouse(self, release: str) -> Path:
        """The app wheelhouse of ``release``, mounted read-only into that release's lab hosts."""
        return self.cache_dir / "wheelhouse" / release

    @property
    def apt_cache(self) -> Path:
        return self.cache_dir / "apt-cacher-ng"

    @property
    def ca_bundle(self) -> Path | None:
        """This machine's CA bundle, handed to pip in build containers (HTTPS
        to PyPI is verified against it; Debian's own bundle does not do here)."""
        for cand in (os.environ.get("STACKLAB_CA_BUNDLE"), os.environ.get("PIP_CERT"),
                     os.environ.get("REQUESTS_CA_BUNDLE"), "/etc/ssl/certs/ca-certificates.crt"):
            if cand and os.path.isfile(cand):
                return Path(cand).resolve()
        return None

"""Where the lab keeps things; environment overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SALT_VERSION = "3008.3"  # the newest 3008 whose dependencies resolve here (see requirements.txt)


@dataclass
class Settings:
    repo: Path = REPO
    cache_dir: Path = Path()
    image_prefix: str = "stacklab"
    state_dir: Path = Path()   # .lab/ in the repo: per-layout pillar, keys, secrets

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
        return [self.repo / "pillar" / "layouts", self.repo / "tests" / "lab" / "topologies"]

    @property
    def wheelhouse(self) -> Path:
        """The app wheelhouse, mounted read-only into every lab host."""
        return self.cache_dir / "wheelhouse"

    @property
    def apt_cache(self) -> Path:
        return self.cache_dir / "apt-cacher-ng"

"""Base images and wheelhouses, built locally and reused while their recipe holds.

No registry is reachable, so images come from Debian's mirror: debootstrap a
rootfs, ``docker import`` it, then a legacy ``docker build`` (no buildx here)
adds Salt from a wheelhouse built on the host. Every image is tagged by a
hash of its recipe, so it is rebuilt only when the recipe changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import docker
from .config import SALT_VERSION, Settings
from .util import LabError, Progress, file_lock, hash_tree, run_logged, sha256_text

RECIPE_DIR = Path(__file__).resolve().parent / "recipe"

DEBOOTSTRAP_SUITE = "bookworm"
DEBOOTSTRAP_MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_INCLUDE = [
    "systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "iproute2", "procps",
    "ca-certificates", "iputils-ping", "curl", "less",
]
DEBOOTSTRAP_ARGS = [
    "--variant=minbase", f"--include={','.join(DEBOOTSTRAP_INCLUDE)}",
    DEBOOTSTRAP_SUITE,
]
# Files written into the rootfs before import (path relative to / -> content).
ROOTFS_FILES = {
    "etc/apt/sources.list": (
        "deb http://deb.debian.org/debian bookworm main\n"
        "deb http://deb.debian.org/debian bookworm-updates main\n"
        "deb http://deb.debian.org/debian-security bookworm-security main\n"
    ),
    # Empty: systemd generates a fresh id at each boot, so hosts differ.
    "etc/machine-id": "",
    # Debian's tmp.conf empties /tmp at boot; keep it a plain directory.
    "etc/tmpfiles.d/tmp.conf": "d /tmp 1777 root root -\n",
    # A server's locale; services (and PostgreSQL's initdb) inherit it.
    "etc/default/locale": "LANG=C.UTF-8\n",
}
IMPORT_CHANGES = ['CMD ["/sbin/init"]', "ENV container=docker"]


@dataclass
class ImageSet:
    rootfs: str
    base: str
    aptproxy: str


def _recipe(name: str) -> str:
    return (RECIPE_DIR / name).read_text()


def _pip_env(settings: Settings) -> dict:
    env = dict(os.environ)
    env["PIP_CACHE_DIR"] = str(settings.cache_dir / "pip")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _pip(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "pip"]


# --- Salt wheelhouse (for the images) --------------------------------------

def salt_wheelhouse(settings: Settings, progress: Progress) -> Path:
    """Wheels for salt==SALT_VERSION and its dependencies, built once per pin."""
    dest = settings.cache_dir / "salt-wheels" / SALT_VERSION
    if (dest / ".complete").is_file():
        return dest
    with file_lock(settings.cache_dir / "locks" / "salt-wheels.lock", "salt wheelhouse", progress):
        if (dest / ".complete").is_file():
            return dest
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with progress.step(f"building the Salt {SALT_VERSION} wheelhouse on the host"):
            run_logged(
                [*_pip(settings), "wheel", "--wheel-dir", str(tmp), f"salt=={SALT_VERSION}"],
                log=settings.cache_dir / "logs" / "salt-wheels.log", title="pip wheel salt",
                progress=progress, timeout=1200, env=_pip_env(settings),
            )
        (tmp / ".complete").write_text("\n".join(_wheels(tmp)) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest


def _wheels(d: Path) -> list[str]:
    return sorted(p.name for p in d.glob("*.whl"))


# --- recipe hashes ------------------------------------------------------------

def rootfs_hash() -> str:
    files = sorted(ROOTFS_FILES.items())
    return sha256_text(
        "rootfs-v1", DEBOOTSTRAP_MIRROR, *DEBOOTSTRAP_ARGS, *IMPORT_CHANGES,
        *[x for kv in files for x in kv],
    )[:12]


def base_hash(rootfs_ref: str, wheels: list[str]) -> str:
    return sha256_text(
        "base-v1", rootfs_ref, _recipe("Dockerfile.base"), _recipe("salt-master.service"),
        _recipe("salt-minion.service"), SALT_VERSION, *wheels,
    )[:12]


def aptproxy_hash(base_ref: str) -> str:
    return sha256_text(
        "aptproxy-v1", base_ref, _recipe("Dockerfile.aptproxy"), _recipe("zz-stacklab.conf"),
    )[:12]


# --- builds -------------------------------------------------------------------

def _build_rootfs(settings: Settings, ref: str, h: str, progress: Progress) -> None:
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed: run ./lab (it installs it) or apt-get install debootstrap")
    work = settings.cache_dir / "build" / f"rootfs-{h}"
    rootfs = work / "rootfs"
    shutil.rmtree(work, ignore_errors=True)
    rootfs.mkdir(parents=True)
    debcache = settings.cache_dir / "debootstrap"
    debcache.mkdir(parents=True, exist_ok=True)
    try:
        with progress.step(f"debootstrap {DEBOOTSTRAP_SUITE} (minbase + systemd) for {ref}"):
            run_logged(
                ["debootstrap", f"--cache-dir={debcache}", *DEBOOTSTRAP_ARGS, str(rootfs), DEBOOTSTRAP_MIRROR],
                log=settings.cache_dir / "logs" / "debootstrap.log", title="debootstrap",
                progress=progress, timeout=1800,
            )
        for rel, content in ROOTFS_FILES.items():
            path = rootfs / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        # Package lists and downloaded .debs do not belong in an image.
        for sub in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for p in (rootfs / sub).glob("*"):
                if p.is_file():
                    p.unlink()
        with progress.step(f"docker import {ref}"):
            changes = [x for c in IMPORT_CHANGES for x in ("-c", c)]
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."],
                                   stdout=subprocess.PIPE)
            imp = subprocess.run(
                ["docker", "import", *changes, "-m", f"stacklab rootfs {h}", "-", ref],
                stdin=tar.stdout, capture_output=True, timeout=900,
            )
            tar.stdout.close()
            tar.wait()
            if imp.returncode != 0 or tar.returncode != 0:
                raise LabError(f"docker import {ref} failed: {imp.stderr.decode(errors='replace')}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _docker_build(settings: Settings, ref: str, h: str, dockerfile: str, files: dict[str, Path],
                  progress: Progress, title: str) -> None:
    ctx = settings.cache_dir / "build" / f"{ref.replace(':', '-').replace('/', '_')}"
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    try:
        (ctx / "Dockerfile").write_text(dockerfile)
        for name, src in files.items():
            if src.is_dir():
                shutil.copytree(src, ctx / name, copy_function=_link_or_copy,
                                ignore=shutil.ignore_patterns(".complete"))
            else:
                shutil.copy2(src, ctx / name)
        env = dict(os.environ, DOCKER_BUILDKIT="0")
        with progress.step(title):
            run_logged(
                ["docker", "build", "--label", f"stacklab.recipe={h}", "-t", ref, str(ctx)],
                log=settings.cache_dir / "logs" / f"build-{ref.split(':')[0].rsplit('-', 1)[-1]}.log",
                title=f"docker build {ref}", progress=progress, timeout=1800, env=env,
            )
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def ensure_images(settings: Settings, progress: Progress) -> ImageSet:
    """Build whatever image of the recipe is missing; reuse the rest."""
    docker.available()
    p = settings.image_prefix
    with file_lock(settings.cache_dir / "locks" / "images.lock", "image build", progress):
        rh = rootfs_hash()
        rootfs = f"{p}-rootfs:{rh}"
        if not docker.image_exists(rootfs):
            _build_rootfs(settings, rootfs, rh, progress)
        wheels_dir = salt_wheelhouse(settings, progress)
        bh = base_hash(rootfs, _wheels(wheels_dir))
        base = f"{p}-base:{bh}"
        if not docker.image_exists(base):
            df = _recipe("Dockerfile.base").format(rootfs=rootfs, salt_version=SALT_VERSION)
            _docker_build(settings, base, bh, df, {
                "wheels": wheels_dir,
                "salt-master.service": RECIPE_DIR / "salt-master.service",
                "salt-minion.service": RECIPE_DIR / "salt-minion.service",
            }, progress, f"docker build {base} (Salt {SALT_VERSION} in /opt/salt)")
        ah = aptproxy_hash(base)
        aptproxy = f"{p}-aptproxy:{ah}"
        if not docker.image_exists(aptproxy):
            df = _recipe("Dockerfile.aptproxy").format(base=base)
            _docker_build(settings, aptproxy, ah, df, {
                "zz-stacklab.conf": RECIPE_DIR / "zz-stacklab.conf",
            }, progress, f"docker build {aptproxy} (apt-cacher-ng)")
        _prune(p, {rootfs, base, aptproxy})
    progress(f"images: {base}, {aptproxy}")
    return ImageSet(rootfs=rootfs, base=base, aptproxy=aptproxy)


def _prune(prefix: str, keep: set[str]) -> None:
    """Untag older builds of this prefix's images (ones still in use stay)."""
    stale = []
    for kind in ("aptproxy", "base", "rootfs"):
        res = docker.out("images", "--format", "{{.Repository}}:{{.Tag}}", f"{prefix}-{kind}", check=False)
        stale += [r for r in res.split() if r and r not in keep and not r.endswith(":<none>")]
    for ref in stale:
        docker.docker("rmi", ref, check=False, timeout=120)


def remove_images(prefix: str) -> list[str]:
    """Remove every image whose repository is <prefix>-{rootfs,base,aptproxy} (for tests)."""
    refs = []
    for kind in ("aptproxy", "base", "rootfs"):
        res = docker.out("images", "--format", "{{.Repository}}:{{.Tag}}", f"{prefix}-{kind}")
        refs += [r for r in res.split() if r]
    if refs:
        docker.docker("rmi", "-f", *refs, check=False, timeout=300)
    return refs


# --- app wheelhouse (mounted into every lab host) -----------------------------

def _app_sources(settings: Settings) -> tuple[list[Path], Path | None]:
    reqs = sorted((settings.repo / "salt" / "apps").glob("*/requirements.txt"))
    pkg = settings.repo / "formulas" / "django" / "files" / "djangostack"
    if not any((pkg / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")):
        pkg = None
    return reqs, pkg


def _build_requires(pkg: Path) -> list[str]:
    """What pip needs to build ``pkg`` offline on a lab host (PEP 517/518)."""
    pyproject = pkg / "pyproject.toml"
    if pyproject.is_file():
        try:
            bs = tomllib.loads(pyproject.read_text()).get("build-system", {})
        except tomllib.TOMLDecodeError:
            bs = {}
        if bs.get("requires"):
            return list(bs["requires"]) + ["wheel"]
    return ["setuptools>=40.8.0", "wheel"]


def app_wheelhouse(settings: Settings, progress: Progress) -> Path:
    """Wheels for every salt/apps/*/requirements.txt and for djangostack (plus
    its build requirements, so lab hosts can also build it from source with
    --no-index). Rebuilt only when those inputs change; updated in place so
    running labs see it through their bind mount."""
    dest = settings.wheelhouse
    dest.mkdir(parents=True, exist_ok=True)
    reqs, pkg = _app_sources(settings)
    inputs = reqs + ([pkg] if pkg else [])
    stamp_value = sha256_text(
        "wheelhouse-v1", f"py{sys.version_info[0]}{sys.version_info[1]}",
        hash_tree(inputs, settings.repo) if inputs else "",
    )
    stamp = dest / ".stacklab-stamp"
    if stamp.is_file() and stamp.read_text().strip() == stamp_value:
        return dest
    if not inputs:
        progress("app wheelhouse: no salt/apps/*/requirements.txt yet; leaving it empty")
        stamp.write_text(stamp_value + "\n")
        return dest
    with file_lock(settings.cache_dir / "locks" / "wheelhouse.lock", "app wheelhouse", progress):
        if stamp.is_file() and stamp.read_text().strip() == stamp_value:
            return dest
        with progress.step(f"building the app wheelhouse ({len(reqs)} requirements file(s)"
                           f"{', djangostack' if pkg else ''})"):
            log = settings.cache_dir / "logs" / "wheelhouse.log"
            for req in reqs:
                run_logged([*_pip(settings), "wheel", "--wheel-dir", str(dest), "-r", str(req)],
                           log=log, title=f"pip wheel -r {req.relative_to(settings.repo)}",
                           progress=progress, timeout=1800, env=_pip_env(settings), cwd=req.parent)
            extra = ["setuptools", "wheel"]
            copy = settings.cache_dir / "build" / "djangostack"
            shutil.rmtree(copy, ignore_errors=True)
            if pkg:
                # Build from a copy: setuptools writes build/ and *.egg-info
                # into the source tree, which is the formula's file tree.
                shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns(
                    "build", "*.egg-info", "__pycache__"))
                extra = [str(copy), *_build_requires(pkg)]
            try:
                run_logged([*_pip(settings), "wheel", "--wheel-dir", str(dest), *extra],
                           log=log, title="pip wheel (djangostack, build requirements)",
                           progress=progress, timeout=1800, env=_pip_env(settings))
            finally:
                shutil.rmtree(copy, ignore_errors=True)
        stamp.write_text(stamp_value + "\n")
    progress(f"app wheelhouse: {len(_wheels(dest))} wheels in {dest}")
    return dest

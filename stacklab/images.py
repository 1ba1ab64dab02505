"""Base images and wheelhouses per Debian release, built locally and reused
while their recipe holds.

No registry is reachable, so images come from Debian's mirror: debootstrap a
rootfs, ``docker import`` it, then legacy ``docker build`` (no buildx here)
on top of it. Per release (``trixie``, ``bookworm``), tagged
``<prefix>-<kind>:<release>-<recipe hash>``:

- ``rootfs``: debootstrap minbase + systemd, imported;
- ``build``: rootfs + gcc, python3-dev and a venv: wheelhouses are built
  in it, with that release's own Python (trixie's 3.13 has to compile
  Salt's ``timelib``);
- ``base``: rootfs + Salt from the release's Salt wheelhouse, in /opt/salt, and sshd;
- ``aptproxy``: rootfs + apt-cacher-ng;
- ``acme``: rootfs + pebble, the lab's ACME server.

pip in a build container reaches PyPI over HTTPS with this machine's CA
bundle mounted (PIP_CERT/REQUESTS_CA_BUNDLE point at it): Debian's own
bundle does not verify PyPI here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import docker
from .config import SALT_VERSION, Settings, check_release
from .util import LabError, Progress, file_lock, hash_tree, run_logged, sha256_text

RECIPE_DIR = Path(__file__).resolve().parent / "recipe"
KINDS = ("acme", "aptproxy", "base", "build", "rootfs")

DEBOOTSTRAP_MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_INCLUDE = [
    "systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "iproute2", "procps",
    "ca-certificates", "iputils-ping", "curl", "less",
]
# Where the build container sees this machine's CA bundle.
CA_MOUNT = "/etc/stacklab-host-ca.crt"


def _sources(release: str) -> str:
    return (f"deb http://deb.debian.org/debian {release} main\n"
            f"deb http://deb.debian.org/debian {release}-updates main\n"
            f"deb http://deb.debian.org/debian-security {release}-security main\n")


def rootfs_files(release: str) -> dict[str, str]:
    """Files written into the rootfs before import (path relative to / -> content)."""
    return {
        "etc/apt/sources.list": _sources(release),
        # Empty: systemd generates a fresh id at each boot, so hosts differ.
        "etc/machine-id": "",
        # Debian's tmp.conf empties /tmp at boot; keep it a plain directory.
        "etc/tmpfiles.d/tmp.conf": "d /tmp 1777 root root -\n",
        # A server's locale; services (and PostgreSQL's initdb) inherit it.
        "etc/default/locale": "LANG=C.UTF-8\n",
    }


# Symlinks made in the rootfs (path -> target). Containers share the host's
# kernel and load no modules: on trixie, /etc/modules-load.d/modules.conf
# points at a missing /etc/modules and the unit would fail the boot
# ("degraded").
ROOTFS_LINKS = {"etc/systemd/system/systemd-modules-load.service": "/dev/null"}
IMPORT_CHANGES = ['CMD ["/sbin/init"]', "ENV container=docker"]


@dataclass
class ImageSet:
    release: str
    rootfs: str
    build: str
    base: str
    aptproxy: str
    acme: str


def _recipe(name: str) -> str:
    return (RECIPE_DIR / name).read_text()


def _wheels(d: Path) -> list[str]:
    return sorted(p.name for p in d.glob("*.whl"))


def _ref(settings: Settings, kind: str, release: str, h: str) -> str:
    return f"{settings.image_prefix}-{kind}:{release}-{h}"


# --- recipe hashes ------------------------------------------------------------

def debootstrap_args(release: str) -> list[str]:
    return ["--variant=minbase", f"--include={','.join(DEBOOTSTRAP_INCLUDE)}", release]


def rootfs_hash(release: str) -> str:
    files = sorted(rootfs_files(release).items()) + sorted(ROOTFS_LINKS.items())
    return sha256_text(
        "rootfs-v2", DEBOOTSTRAP_MIRROR, *debootstrap_args(release), *IMPORT_CHANGES,
        *[x for kv in files for x in kv],
    )[:12]


def build_hash(rootfs_ref: str) -> str:
    return sha256_text("build-v1", rootfs_ref, _recipe("Dockerfile.build"))[:12]


def base_hash(rootfs_ref: str, wheels: list[str]) -> str:
    return sha256_text(
        "base-v2", rootfs_ref, _recipe("Dockerfile.base"), _recipe("salt-master.service"),
        _recipe("salt-minion.service"), _recipe("ssh-host-keys.service"), SALT_VERSION, *wheels,
    )[:12]


def aptproxy_hash(rootfs_ref: str) -> str:
    return sha256_text(
        "aptproxy-v2", rootfs_ref, _recipe("Dockerfile.aptproxy"), _recipe("zz-stacklab.conf"),
    )[:12]


def acme_hash(rootfs_ref: str) -> str:
    return sha256_text("acme-v1", rootfs_ref, _recipe("Dockerfile.acme"))[:12]


# --- builds -------------------------------------------------------------------

def _build_rootfs(settings: Settings, release: str, ref: str, h: str, progress: Progress) -> None:
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed: run ./lab (it installs it) or apt-get install debootstrap")
    work = settings.cache_dir / "build" / f"rootfs-{release}-{h}"
    rootfs = work / "rootfs"
    shutil.rmtree(work, ignore_errors=True)
    rootfs.mkdir(parents=True)
    debcache = settings.cache_dir / "debootstrap" / release
    debcache.mkdir(parents=True, exist_ok=True)
    try:
        with progress.step(f"debootstrap {release} (minbase + systemd) for {ref}"):
            run_logged(
                ["debootstrap", f"--cache-dir={debcache}", *debootstrap_args(release), str(rootfs),
                 DEBOOTSTRAP_MIRROR],
                log=settings.cache_dir / "logs" / f"debootstrap-{release}.log", title=f"debootstrap {release}",
                progress=progress, timeout=1800,
            )
        for rel, content in rootfs_files(release).items():
            path = rootfs / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        for rel, target in ROOTFS_LINKS.items():
            path = rootfs / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink() or path.exists():
                path.unlink()
            path.symlink_to(target)
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
                ["docker", "import", *changes, "-m", f"stacklab rootfs {release} {h}", "-", ref],
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
        kind = ref.split(":")[0].rsplit("-", 1)[-1]
        with progress.step(title):
            run_logged(
                ["docker", "build", "--label", f"stacklab.recipe={h}", "-t", ref, str(ctx)],
                log=settings.cache_dir / "logs" / f"build-{kind}-{ref.rsplit(':', 1)[-1]}.log",
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


# --- wheelhouses, built in the release's build container ----------------------

def run_in_build(settings: Settings, release: str, build_ref: str, script: str, *,
                 mounts: dict[Path, str], log: Path, title: str, progress: Progress,
                 timeout: float = 1800) -> None:
    """Run ``script`` (sh -e) in a throwaway container of ``build_ref`` (the
    release's build image) with ``mounts`` {host path: container path[:ro]},
    this machine's CA bundle for pip, and a per-release pip cache. The
    container is removed afterwards, also on timeout."""
    pip_cache = settings.cache_dir / "pip" / release
    pip_cache.mkdir(parents=True, exist_ok=True)
    args = ["-v", f"{pip_cache}:/root/.cache/pip"]
    for src, dst in mounts.items():
        args += ["-v", f"{src}:{dst}"]
    ca = settings.ca_bundle
    if ca:
        args += ["-v", f"{ca}:{CA_MOUNT}:ro", "-e", f"PIP_CERT={CA_MOUNT}",
                 "-e", f"REQUESTS_CA_BUNDLE={CA_MOUNT}", "-e", f"SSL_CERT_FILE={CA_MOUNT}"]
    name = f"{settings.image_prefix}-wheelbuild-{uuid.uuid4().hex[:8]}"
    cmd = ["docker", "run", "--rm", "--name", name, "--label", "stacklab.wheelbuild=true",
           "-e", "PIP_DISABLE_PIP_VERSION_CHECK=1", "-e", "PIP_DEFAULT_TIMEOUT=120",
           *args, build_ref, "sh", "-ec", script]
    try:
        run_logged(cmd, log=log, title=title, progress=progress, timeout=timeout)
    except LabError as exc:
        if "SSL" in str(exc) or "CERTIFICATE" in str(exc).upper():
            raise LabError(f"{exc}\n(pip in the build container could not verify PyPI: set "
                           "STACKLAB_CA_BUNDLE to this machine's CA bundle)") from exc
        raise
    finally:
        docker.docker("rm", "-f", name, check=False, timeout=60)


def salt_wheelhouse(settings: Settings, release: str, build_ref: str, progress: Progress) -> Path:
    """Wheels for salt==SALT_VERSION and its dependencies, built once per
    release and pin with that release's Python."""
    dest = settings.cache_dir / "salt-wheels" / release / SALT_VERSION
    if (dest / ".complete").is_file():
        return dest
    with file_lock(settings.cache_dir / "locks" / f"salt-wheels-{release}.lock", "salt wheelhouse", progress):
        if (dest / ".complete").is_file():
            return dest
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with progress.step(f"building the Salt {SALT_VERSION} wheelhouse for {release} (in {build_ref})"):
            run_in_build(settings, release, build_ref,
                         f"/opt/build/bin/pip wheel --wheel-dir /wheels salt=={SALT_VERSION}",
                         mounts={tmp: "/wheels"}, title=f"pip wheel salt ({release})", progress=progress,
                         log=settings.cache_dir / "logs" / f"salt-wheels-{release}.log")
        (tmp / ".complete").write_text("\n".join(_wheels(tmp)) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest


def _app_sources(settings: Settings) -> tuple[list[Path], Path | None]:
    reqs = sorted((settings.repo / "examples" / "apps").glob("*/requirements.txt"))
    pkg = settings.repo / "djangostack"
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


def app_wheelhouse(settings: Settings, release: str, progress: Progress,
                   imgs: "ImageSet | None" = None) -> Path:
    """Wheels for every examples/apps/*/requirements.txt and for djangostack
    (plus its build requirements, so lab hosts can also build it from source
    with --no-index), built with ``release``'s Python in its build image.
    Rebuilt only when those inputs change; updated in place so running labs
    see it through their bind mount."""
    release = check_release(release)
    dest = settings.wheelhouse(release)
    dest.mkdir(parents=True, exist_ok=True)
    reqs, pkg = _app_sources(settings)
    inputs = reqs + ([pkg] if pkg else [])
    stamp_value = sha256_text(
        "wheelhouse-v2", release, hash_tree(inputs, settings.repo) if inputs else "",
    )
    stamp = dest / ".stacklab-stamp"
    if stamp.is_file() and stamp.read_text().strip() == stamp_value:
        return dest
    if not inputs:
        progress("app wheelhouse: no examples/apps/*/requirements.txt yet; leaving it empty")
        stamp.write_text(stamp_value + "\n")
        return dest
    if imgs is None:
        imgs = ensure_images(settings, release, progress)
    with file_lock(settings.cache_dir / "locks" / f"wheelhouse-{release}.lock", "app wheelhouse", progress):
        if stamp.is_file() and stamp.read_text().strip() == stamp_value:
            return dest
        work = settings.cache_dir / "build" / f"app-wheels-{release}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        mounts = {dest: "/wheels"}
        lines = []
        for i, req in enumerate(reqs):
            # Each requirements file with its directory (it may refer to siblings).
            mounts[req.parent] = f"/src/req{i}:ro"
            lines.append(f"cd /src/req{i} && /opt/build/bin/pip wheel --wheel-dir /wheels -r {req.name}")
        extra = ["setuptools", "wheel"]
        if pkg:
            # Build from a copy: setuptools writes build/ and *.egg-info into
            # the source tree, which the formula ships.
            shutil.copytree(pkg, work / "djangostack", ignore=shutil.ignore_patterns(
                "build", "*.egg-info", "__pycache__"))
            mounts[work / "djangostack"] = "/src/djangostack"
            extra = ["/src/djangostack", *_build_requires(pkg)]
        lines.append("cd / && /opt/build/bin/pip wheel --wheel-dir /wheels "
                     + " ".join(f"'{x}'" for x in extra))
        try:
            with progress.step(f"building the {release} app wheelhouse ({len(reqs)} requirements "
                               f"file(s){', djangostack' if pkg else ''}; in {imgs.build})"):
                run_in_build(settings, release, imgs.build, "\n".join(lines), mounts=mounts,
                             title=f"pip wheel (apps, djangostack; {release})", progress=progress,
                             log=settings.cache_dir / "logs" / f"wheelhouse-{release}.log")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        stamp.write_text(stamp_value + "\n")
    progress(f"app wheelhouse ({release}): {len(_wheels(dest))} wheels in {dest}")
    return dest


# --- the image set -------------------------------------------------------------

def ensure_images(settings: Settings, release: str, progress: Progress) -> ImageSet:
    """Build whatever image of ``release``'s recipe is missing; reuse the rest."""
    release = check_release(release)
    docker.available()
    with file_lock(settings.cache_dir / "locks" / f"images-{release}.lock", f"{release} image build", progress):
        rh = rootfs_hash(release)
        rootfs = _ref(settings, "rootfs", release, rh)
        if not docker.image_exists(rootfs):
            _build_rootfs(settings, release, rootfs, rh, progress)
        bh = build_hash(rootfs)
        build = _ref(settings, "build", release, bh)
        if not docker.image_exists(build):
            _docker_build(settings, build, bh, _recipe("Dockerfile.build").format(rootfs=rootfs), {},
                          progress, f"docker build {build} (gcc, python3-dev: wheels for {release})")
        wheels_dir = salt_wheelhouse(settings, release, build, progress)
        sh = base_hash(rootfs, _wheels(wheels_dir))
        base = _ref(settings, "base", release, sh)
        if not docker.image_exists(base):
            df = _recipe("Dockerfile.base").format(rootfs=rootfs, salt_version=SALT_VERSION)
            _docker_build(settings, base, sh, df, {
                "wheels": wheels_dir,
                "salt-master.service": RECIPE_DIR / "salt-master.service",
                "salt-minion.service": RECIPE_DIR / "salt-minion.service",
                "ssh-host-keys.service": RECIPE_DIR / "ssh-host-keys.service",
            }, progress, f"docker build {base} (Salt {SALT_VERSION} in /opt/salt)")
        ah = aptproxy_hash(rootfs)
        aptproxy = _ref(settings, "aptproxy", release, ah)
        if not docker.image_exists(aptproxy):
            df = _recipe("Dockerfile.aptproxy").format(rootfs=rootfs)
            _docker_build(settings, aptproxy, ah, df, {
                "zz-stacklab.conf": RECIPE_DIR / "zz-stacklab.conf",
            }, progress, f"docker build {aptproxy} (apt-cacher-ng)")
        mh = acme_hash(rootfs)
        acme = _ref(settings, "acme", release, mh)
        if not docker.image_exists(acme):
            _docker_build(settings, acme, mh, _recipe("Dockerfile.acme").format(rootfs=rootfs), {},
                          progress, f"docker build {acme} (pebble)")
        _prune(settings.image_prefix, release, {rootfs, build, base, aptproxy, acme})
    progress(f"images ({release}): {base}, {aptproxy}, {acme}")
    return ImageSet(release=release, rootfs=rootfs, build=build, base=base, aptproxy=aptproxy, acme=acme)


def _refs(prefix: str, kind: str) -> list[str]:
    res = docker.out("images", "--format", "{{.Repository}}:{{.Tag}}", f"{prefix}-{kind}", check=False)
    return [r for r in res.split() if r and not r.endswith(":<none>")]


def _prune(prefix: str, release: str, keep: set[str]) -> None:
    """Untag older builds of this release's images; images still in use by a
    container stay (rmi without -f refuses them). Other releases' images,
    and tags without a release (older lab versions; others may run
    containers from them), are left alone."""
    stale = [ref for kind in KINDS for ref in _refs(prefix, kind)
             if ref not in keep and ref.rsplit(":", 1)[-1].startswith(f"{release}-")]
    for ref in stale:
        docker.docker("rmi", ref, check=False, timeout=120)


def remove_images(prefix: str) -> list[str]:
    """Remove every image whose repository is <prefix>-<kind> (for tests)."""
    refs = [r for kind in KINDS for r in _refs(prefix, kind)]
    if refs:
        docker.docker("rmi", "-f", *refs, check=False, timeout=300)
    return refs

"""Thin wrapper over the docker CLI (no SDK: the CLI is what the machine has)."""

from __future__ import annotations

import json
import shlex
import subprocess
from typing import Sequence

from .util import LabError

# Flags that boot systemd as PID 1 on this kind of machine (--privileged
# fails: the machine lacks CAP_SYS_RESOURCE).
SYSTEMD_RUN_FLAGS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "--stop-signal", "SIGRTMIN+3",
]


def docker(
    *args: str,
    check: bool = True,
    timeout: float = 120,
    input: bytes | str | None = None,
    capture: bool = True,
) -> subprocess.CompletedProcess:
    cmd = ["docker", *args]
    if isinstance(input, str):
        input = input.encode()
    try:
        proc = subprocess.run(
            cmd, input=input, timeout=timeout,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout:.0f}s: {shlex.join(cmd)}") from exc
    except FileNotFoundError as exc:
        raise LabError("docker CLI not found: run ./lab (it installs docker.io)") from exc
    if check and proc.returncode != 0:
        err = (proc.stderr or b"").decode(errors="replace").strip()
        raise LabError(f"{shlex.join(cmd[:6])}{' ...' if len(cmd) > 6 else ''}: exit {proc.returncode}: {err}")
    return proc


def out(*args: str, **kw) -> str:
    return docker(*args, **kw).stdout.decode(errors="replace").strip()


def available() -> None:
    proc = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    if proc.returncode != 0:
        raise LabError(
            "docker engine not reachable (`docker info` failed); ./lab starts dockerd when needed: "
            + (proc.stderr or b"").decode(errors="replace").strip()
        )


def image_exists(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False, timeout=30).returncode == 0


def ids(kind: str, labels: Sequence[str]) -> list[str]:
    """IDs of containers/networks/volumes carrying all ``labels`` (k=v)."""
    filt: list[str] = []
    for label in labels:
        filt += ["--filter", f"label={label}"]
    if kind == "container":
        res = out("ps", "-aq", "--no-trunc", *filt)
    elif kind == "network":
        res = out("network", "ls", "-q", "--no-trunc", *filt)
    elif kind == "volume":
        res = out("volume", "ls", "-q", *filt)
    else:
        raise ValueError(kind)
    return [x for x in res.split() if x]


def inspect(*refs: str, kind: str = "container") -> list[dict]:
    if not refs:
        return []
    proc = docker(kind, "inspect", *refs, check=False, timeout=60)
    try:
        return json.loads(proc.stdout or b"[]")
    except json.JSONDecodeError:
        return []


def exec_(
    container: str,
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 120,
    input: bytes | str | None = None,
) -> subprocess.CompletedProcess:
    flags = ["-i"] if input is not None else []
    return docker("exec", *flags, container, *argv, check=check, timeout=timeout, input=input)


def sh(container: str, script: str, **kw) -> subprocess.CompletedProcess:
    return exec_(container, ["sh", "-c", script], **kw)


def put_file(container: str, path: str, content: str | bytes, mode: str = "0644") -> None:
    """Write ``content`` to ``path`` in a running container (root-owned)."""
    d = shlex.quote(path.rsplit("/", 1)[0] or "/")
    p = shlex.quote(path)
    tmp = shlex.quote(path + ".stacklab-tmp")
    sh(
        container,
        f"mkdir -p {d} && umask 077 && cat > {tmp} && chmod {mode} {tmp} && mv -f {tmp} {p}",
        input=content,
        timeout=60,
    )

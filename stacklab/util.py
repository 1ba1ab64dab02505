"""Small helpers: errors, progress lines, long-running commands, hashing, locks."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence


class LabError(RuntimeError):
    """A lab step failed; the message says which and why."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Progress:
    """Timestamped progress lines (to stderr by default) and per-step timings.

    ``out`` is any callable taking one line; tests pass one that bypasses
    pytest's capture so long steps stay visible.
    """

    def __init__(self, out: Callable[[str], None] | None = None):
        self.out = out or _stderr
        self.t0 = time.monotonic()
        self.timings: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def __call__(self, msg: str) -> None:
        with self._lock:
            self.out(f"[{self.elapsed():6.1f}s] {msg}")

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self(f"{title} ...")
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self(f"{title}: FAILED after {time.monotonic() - start:.1f}s")
            raise
        took = time.monotonic() - start
        self.timings.append((title, took))
        self(f"{title}: done in {took:.1f}s")


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run_logged(
    cmd: Sequence[str],
    *,
    log: Path,
    title: str,
    progress: Progress,
    timeout: float,
    env: dict | None = None,
    cwd: Path | None = None,
    heartbeat: float = 15.0,
) -> None:
    """Run a long command with its output in ``log``; print a heartbeat with
    the command's last output line; kill it at ``timeout``; on failure raise
    with the log's tail so the reason is on screen."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "wb") as fh:
        fh.write(("$ " + " ".join(cmd) + "\n").encode())
        fh.flush()
        proc = subprocess.Popen(
            list(cmd), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )
        next_beat = start + heartbeat
        while True:
            try:
                rc = proc.wait(timeout=1)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if now - start > timeout:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait()
                raise LabError(
                    f"{title}: timed out after {timeout:.0f}s (log: {log})\n{tail(log)}"
                )
            if now >= next_beat:
                last = tail(log, 1).strip()[:110]
                progress(f"  {title}: {now - start:.0f}s ... {last}")
                next_beat = now + heartbeat
    if rc != 0:
        raise LabError(f"{title}: exit {rc} (log: {log})\n{tail(log)}")


def sha256_text(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def hash_tree(paths: Iterable[Path], base: Path) -> str:
    """Hash file names and contents below ``paths`` (sorted, skipping caches)."""
    parts: list[str | bytes] = []
    for root in sorted(paths):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            rel = f.relative_to(base).as_posix()
            if "__pycache__" in rel or rel.endswith(".pyc") or ".egg-info" in rel or "/build/" in rel:
                continue
            parts += [rel, f.read_bytes()]
    return sha256_text(*parts)


@contextlib.contextmanager
def file_lock(path: Path, what: str, progress: Progress, timeout: float = 1800) -> Iterator[None]:
    """Exclusive lock so two lab processes never build or change the same thing at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        start = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    progress(f"waiting for another stacklab process ({what}, lock {path})")
                    told = True
                if time.monotonic() - start > timeout:
                    raise LabError(f"{what}: lock {path} still held after {timeout:.0f}s")
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def wait_until(
    check: Callable[[], tuple[bool, str]],
    *,
    timeout: float,
    what: str,
    progress: Progress | None = None,
    interval: float = 1.0,
    report_every: float = 10.0,
) -> str:
    """Poll ``check`` (returns (done, status text)) until done or timeout."""
    start = time.monotonic()
    next_report = start + report_every
    status = ""
    while True:
        done, status = check()
        if done:
            return status
        now = time.monotonic()
        if now - start > timeout:
            raise LabError(f"{what}: not ready after {timeout:.0f}s ({status})")
        if progress and now >= next_report:
            progress(f"  {what}: {now - start:.0f}s, {status}")
            next_report = now + report_every
        time.sleep(interval)

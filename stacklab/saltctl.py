"""Driving Salt on the lab's master, and reading what it returns.

``SaltMixin`` gives :class:`stacklab.lab.Lab` its Salt verbs (the salt and
salt-run CLIs run inside the master container, always with JSON output);
the functions below turn that JSON into counts per host and readable
failure lines.

The stack lives in its own Salt environment (``STACK_ENV``, file and pillar
roots on the master), so the ordered deploy runs with
``saltenv=stack pillarenv=stack``; a plain highstate (``salt '*'
state.apply``) merges the top files of every environment, which is how the
minion outside the topology gets only its own site's states.
"""

from __future__ import annotations

import datetime
import json
import shlex
import subprocess
import time
from dataclasses import dataclass, field

from . import docker, images
from .util import LabError, wait_until

STACK_ENV = "stack"


@dataclass
class OrchestrateResult:
    """What an orchestrate run did: ``ok``, per host ``hosts[h] = {states,
    changed, failed}`` (summed over steps; salt.state steps report states only
    for minions with changes or failures, so ``states`` undercounts),
    ``changed`` = {host: changed states, 0 for every quiet host}, the
    ``steps`` [(step id, result, comment)] in the order they started, each
    step's ``step_seconds`` and ``step_start`` (seconds after the first
    step started: steps of the ordered deploy that wait for nothing
    unfinished run at once), ``failures`` (readable lines) and the ``raw``
    JSON."""

    ok: bool
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)
    steps: list[tuple[str, bool | None, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    step_start: dict[str, float] = field(default_factory=dict)
    raw: object = None
    seconds: float = 0.0

    @property
    def changed(self) -> dict[str, int]:
        return {h: c["changed"] for h, c in self.hosts.items()}


def count_states(host: str, states: object, failures: list[str]) -> dict[str, int]:
    """Count states/changed/failed in one minion's state.apply return."""
    counts = {"states": 0, "changed": 0, "failed": 0}
    if not isinstance(states, dict):
        # A render error comes back as a list of strings (or a string).
        counts["failed"] = 1
        text = "; ".join(states) if isinstance(states, list) else str(states)
        failures.append(f"{host}: {text.strip()[:2000]}")
        return counts
    for sid, st in sorted(states.items(), key=lambda kv: (kv[1] or {}).get("__run_num__", 0)
                          if isinstance(kv[1], dict) else 0):
        if not isinstance(st, dict):
            continue
        counts["states"] += 1
        if st.get("changes"):
            counts["changed"] += 1
        if st.get("result") is False:
            counts["failed"] += 1
            name = st.get("__id__") or sid
            why = str(st.get("comment", "")).strip()[:1500]
            ch = st.get("changes") if isinstance(st.get("changes"), dict) else {}
            if ch.get("stderr") or ch.get("stdout"):
                why += f" [retcode {ch.get('retcode')}] " + str(ch.get("stderr") or ch.get("stdout"))[-500:]
            failures.append(f"{host}: {name}: {why}")
    return counts


class SaltMixin:
    """Salt verbs of a Lab (needs ``container()``, ``hosts``, ``minions``,
    ``joined``, ``outsider``, ``progress``, ``settings``, ``release``)."""

    last_highstate: object = None

    def salt_cmd(self, *args: str, timeout: float = 900, program: str = "salt") -> subprocess.CompletedProcess:
        """Raw run of the master's salt CLI with --out=json (--static for salt)."""
        extra = ["--out=json"] + (["--static"] if program == "salt" else [])
        r = docker.exec_(self.container("master"), [program, *extra, *args], check=False, timeout=timeout)
        return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(errors="replace"),
                                           r.stderr.decode(errors="replace"))

    def salt(self, *args: str, timeout: float = 900) -> dict:
        """``salt --out=json --static ARGS`` on the master -> parsed JSON
        (whatever the exit code; raises if there is no JSON)."""
        return parse_json(self.salt_cmd(*args, timeout=timeout), "salt " + shlex.join(args))

    def salt_run(self, *args: str, timeout: float = 3600) -> object:
        """``salt-run --out=json ARGS`` on the master -> parsed JSON."""
        r = self._heartbeat_exec(["salt-run", "--out=json", *args], "salt-run " + " ".join(args), timeout)
        return parse_json(r, "salt-run " + shlex.join(args))

    def _heartbeat_exec(self, argv: list[str], title: str, timeout: float) -> subprocess.CompletedProcess:
        """docker exec on the master, printing a progress line every 30s."""
        cmd = ["docker", "exec", self.container("master"), *argv]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)
        start = time.monotonic()
        while True:
            try:
                out, err = proc.communicate(timeout=30)
                break
            except subprocess.TimeoutExpired:
                took = time.monotonic() - start
                if took > timeout:
                    proc.kill()
                    proc.communicate()
                    raise LabError(f"{title}: no result after {timeout:.0f}s")
                self.progress(f"  {title}: running for {took:.0f}s")
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def wait_ping(self, timeout: float = 180) -> None:
        """Wait (bounded, with progress) until every minion (topology hosts
        and the outsider) answers test.ping."""
        expected = set(self.minions)

        def check():
            r = self.salt_cmd("-t", "5", "-L", ",".join(self.minions), "test.ping", timeout=60)
            try:
                data = json.loads(r.stdout or "{}")
            except json.JSONDecodeError:
                data = {}
            ok = {h for h, v in data.items() if v is True}
            missing = sorted(expected - ok)
            return not missing, f"{len(ok)}/{len(expected)} answered, waiting for {', '.join(missing)}"

        with self.progress.step(f"waiting for test.ping from {len(expected)} minions"):
            wait_until(check, timeout=timeout, what="salt test.ping", progress=self.progress,
                       interval=1, report_every=10)

    def run_orchestrate(self, sls: str = "orchestrate.deploy", *, check: bool = True,
                        timeout: float = 3600, pillar: dict | None = None) -> OrchestrateResult:
        """An orchestrate from the master, by default the full ordered deploy:
        ``salt-run state.orchestrate SLS saltenv=stack pillarenv=stack
        [pillar=JSON]``. Prints a per-host summary; raises LabError on
        failure when ``check``."""
        images.app_wheelhouse(self.settings, self.release, self.progress)   # requirements may have changed
        t0 = time.monotonic()
        argv = ["salt-run", "--out=json", "state.orchestrate", sls,
                f"saltenv={STACK_ENV}", f"pillarenv={STACK_ENV}"]
        if pillar:
            argv.append("pillar=" + json.dumps(pillar))
        with self.progress.step(f"salt-run state.orchestrate {sls} saltenv={STACK_ENV} pillarenv={STACK_ENV}"):
            r = self._heartbeat_exec(argv, f"orchestrate {sls}", timeout)
            res = parse_orchestrate(r)
            res.seconds = time.monotonic() - t0
            # salt.state steps report only minions with changes or failures.
            for h in self.hosts:
                res.hosts.setdefault(h, {"states": 0, "changed": 0, "failed": 0})
        self.progress.out(format_orchestrate(res))
        if check and not res.ok:
            raise LabError(f"orchestrate {sls} failed:\n" + "\n".join(res.failures[:30]))
        return res

    def highstate(self, *, check: bool = True, timeout: float = 3600) -> dict[str, int]:
        """``salt '*' state.apply`` -> {topology host: number of states that
        changed}. Every minion must return, the outsider included (its result
        stays in ``last_highstate[lab.outsider]``; ``state_ids(lab.outsider)``
        lists its state ids). Raises LabError listing failed states of any
        minion (when ``check``)."""
        with self.progress.step("salt '*' state.apply"):
            r = self._heartbeat_exec(["salt", "--out=json", "--static", "-t", "60", "*", "state.apply"],
                                     "highstate", timeout)
        data = parse_json(r, "salt '*' state.apply")
        self.last_highstate = data
        failures: list[str] = []
        minions = [*self.minions, *self.joined]
        counts = {h: count_states(h, data.get(h), failures) for h in minions if h in data}
        for h in minions:
            if h not in data:
                failures.append(f"{h}: did not return")
        width = max(len(h) for h in minions)
        for h, c in counts.items():
            self.progress(f"  {h:{width}} {c['states']:4} states {c['changed']:4} changed {c['failed']:4} failed")
        if check and failures:
            raise LabError("highstate failed:\n" + "\n".join(failures[:30]))
        return {h: c["changed"] for h, c in counts.items() if h != self.outsider}

    def state_ids(self, minion: str, result: object = None) -> list[str]:
        """The state ids (``__id__``) in a minion's part of a state.apply
        result (default: the last highstate), in run order. A render error
        (a list of strings) raises LabError with its text."""
        data = self.last_highstate if result is None else result
        if not isinstance(data, dict) or minion not in data:
            raise LabError(f"no state.apply result for {minion}")
        states = data[minion]
        if not isinstance(states, dict):
            raise LabError(f"{minion}: {states}")
        runs = sorted((st for st in states.values() if isinstance(st, dict)),
                      key=lambda st: st.get("__run_num__", 0))
        return [st.get("__id__", "?") for st in runs]

    def master_jid_now(self) -> str:
        """The master's clock as a job id (Salt's jids are its local time,
        YYYYmmddHHMMSSffffff): jobs returned later have larger ids."""
        return docker.out("exec", self.container("master"), "date", "+%Y%m%d%H%M%S%6N", timeout=30).strip()

    def startup_highstate(self, host: str, since_jid: str, timeout: float = 900) -> dict:
        """The highstate ``host`` ran on its own at its minion's start
        (startup_states), returned to the master after ``since_jid``: waits
        for it (bounded), then {jid, states, changed, failed, failures}."""
        def returned():
            jobs = self.salt_run("jobs.list_jobs", f"search_target={host}",
                                 "search_function=state.highstate", timeout=120) or {}
            newer = sorted(jid for jid in jobs if jid > since_jid)
            return bool(newer), newer[-1] if newer else "no highstate returned yet"

        jid = wait_until(returned, timeout=timeout, what=f"{host}: highstate at its minion's start",
                         progress=self.progress, interval=3, report_every=30)
        data = self.salt_run("jobs.lookup_jid", jid, timeout=120) or {}
        failures: list[str] = []
        counts = count_states(host, data.get(host), failures)
        return {"jid": jid, **counts, "failures": failures}

    def pillar(self, host: str) -> dict:
        """A host's compiled pillar, unmasked (Salt 3008 masks pillar output)."""
        data = self.salt(host, "pillar.items", "unmask=True", timeout=300)
        if not isinstance(data.get(host), dict):
            raise LabError(f"pillar of {host}: {data.get(host)!r}")
        return data[host]


def parse_json(r: subprocess.CompletedProcess, what: str):
    text = (r.stdout or "").strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    # salt may print more than one JSON document (e.g. per-minion without --static).
    decoder = json.JSONDecoder()
    docs, i = [], 0
    while i < len(text):
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            break
        docs.append(obj)
        i = end
        while i < len(text) and text[i].isspace():
            i += 1
    if docs and i >= len(text):
        merged: dict = {}
        for d in docs:
            if isinstance(d, dict):
                merged.update(d)
        return merged
    raise LabError(f"{what}: exit {r.returncode}, no JSON output:\n{(r.stderr or '').strip()[-3000:]}\n"
                   f"{text[-3000:]}")


def parse_orchestrate(r: subprocess.CompletedProcess) -> OrchestrateResult:
    res = _parse_orchestrate(r)
    if r.returncode != 0 and res.ok:
        res.ok = False
        res.failures.append(f"salt-run exited {r.returncode}")
    if not res.ok:
        res.failures += _stderr_reasons(r.stderr or "")
    return res


def _parse_orchestrate(r: subprocess.CompletedProcess) -> OrchestrateResult:
    try:
        raw = parse_json(r, "salt-run state.orchestrate")
    except LabError as exc:
        return OrchestrateResult(ok=False, failures=[str(exc)])
    data = raw.get("data", raw) if isinstance(raw, dict) else raw
    res = OrchestrateResult(ok=True, raw=raw)
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), (dict, list)):
        data = next(iter(data.values()))        # {"salt_master": {...steps...}}
    if not isinstance(data, dict):
        res.ok = False
        res.failures.append("orchestrate: " + (("; ".join(map(str, data))) if isinstance(data, list) else str(data)))
        return res
    steps = sorted(((k, v) for k, v in data.items() if isinstance(v, dict)),
                   key=lambda kv: kv[1].get("__run_num__", 0))
    first = None
    for key, st in steps:
        name = st.get("__id__") or st.get("name", "?")
        ok = st.get("result")
        res.steps.append((name, ok, str(st.get("comment", ""))))
        res.step_seconds[name] = float(st.get("duration") or 0) / 1000   # salt reports ms
        started = _seconds_of_day(st.get("start_time"))
        if started is not None:
            first = started if first is None else first
            # Within half a day either way of the first step listed: a run
            # across midnight, or a parallel step that started before it.
            res.step_start[name] = (started - first + 43200) % 86400 - 43200
        if ok is False:
            res.ok = False
        if ok is None and not st.get("__parallel__") and "separate process" in str(st.get("comment", "")):
            # A parallel step still running when a failed one stopped the
            # orchestrate (failhard): Salt reports that it started, no more.
            res.failures.append(f"[{name}] still running when the deploy stopped: its result is not reported")
        rets = (st.get("changes") or {}).get("ret")
        # Only salt.state steps return state results per minion; salt.function
        # steps (e.g. saltutil.refresh_pillar) return the function's value.
        is_state_step = key.split("_|-")[-1] == "state"
        before = len(res.failures)
        if isinstance(rets, dict) and is_state_step:
            for host, states in rets.items():
                fails: list[str] = []
                c = count_states(host, states, fails)
                agg = res.hosts.setdefault(host, {"states": 0, "changed": 0, "failed": 0})
                for k in agg:
                    agg[k] += c[k]
                res.failures += [f"[{name}] {f}" for f in fails]
        if ok is False and len(res.failures) == before:
            detail = str(st.get("comment", "")).strip()[:2000]
            if isinstance(rets, dict) and rets:
                detail += " " + json.dumps(rets, default=str)[:1500]
            res.failures.append(f"[{name}] {detail}")
    if res.step_start:
        earliest = min(res.step_start.values())
        res.step_start = {name: offset - earliest for name, offset in res.step_start.items()}
    return res


def _seconds_of_day(start_time: object) -> float | None:
    """Salt's start_time (local time of day, e.g. 04:21:31.300992) in seconds."""
    try:
        t = datetime.time.fromisoformat(str(start_time))
    except ValueError:
        return None
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def _stderr_reasons(stderr: str, limit: int = 5) -> list[str]:
    """The distinct error lines salt printed (render errors land there)."""
    seen: list[str] = []
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith(("[CRITICAL]", "[ERROR   ] Rendering SLS")) or (
                line.startswith("salt.exceptions.") and ": " in line):
            if line not in seen:
                seen.append(line)
    return [f"salt-run: {x[:1000]}" for x in seen[-limit:]]


def format_orchestrate(res: OrchestrateResult) -> str:
    lines = [f"orchestrate: {'OK' if res.ok else 'FAILED'} in {res.seconds:.0f}s"]
    width = max((len(name) for name, _ok, _comment in res.steps), default=0)
    for name, ok, _comment in res.steps:
        start = f"  from {res.step_start[name]:6.1f}s" if name in res.step_start else ""
        lines.append(f"  {'ok  ' if ok else ('FAIL' if ok is False else '--  ')} {name:{width}} "
                     f"{res.step_seconds.get(name, 0):6.1f}s{start}")
    if res.hosts:
        w = max(14, *(len(h) for h in res.hosts))
        lines.append(f"  {'host':{w}} {'changed':>7} {'failed':>6}   (states, summed over steps)")
        for h, c in sorted(res.hosts.items()):
            lines.append(f"  {h:{w}} {c['changed']:7} {c['failed']:6}")
    for f in res.failures[:30]:
        lines.append("  ! " + f.replace("\n", "\n    "))
    return "\n".join(lines)



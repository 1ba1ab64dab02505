"""uwsgi_vassal.serving: waits until a vassal the emperor (re)loads serves
again, so a deploy moves on to the next app host only once this one answers
with its new code. Salt's core has no uWSGI state (its uwsgi module left core
in 3008), and http.wait_for_successful_query cannot speak the uwsgi protocol
the vassal's socket speaks.

The probes are stackstatus's (formulas/_modules/stackstatus.py): the
vassal's stats socket, and one GET over its uwsgi socket the way the load
balancer's nginx asks."""
import json
import os
import time

__virtualname__ = "uwsgi_vassal"
PROBE_TIMEOUT = 15


def __virtual__():
    return __virtualname__


# A health view's "a dependency is down" (a database that does not let
# this host in yet): the new code runs and answers; the release is not at
# fault, so a deploy goes on.
DEPENDENCY_DOWN = 503


def serving(name, ini, stats_dir, socket, path="/", host="localhost", scheme="http", timeout=120):
    """The vassal ``name`` (stats socket <stats_dir>/<name>/stats.sock, as
    formula uwsgi writes it) runs only workers spawned after ``ini`` last
    changed (the emperor has reloaded it: it reloads on the file's mtime,
    gracefully, letting each worker finish its requests), and a GET of
    ``path`` over ``socket`` (host:port) with Host ``host`` answers 2xx, 3xx
    or DEPENDENCY_DOWN. Changes nothing; fails after ``timeout`` seconds,
    saying what it saw last."""
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    if __opts__["test"]:  # noqa: F821
        ret["result"] = None
        ret["comment"] = f"would wait until vassal {name} is reloaded and answers GET {path}"
        return ret
    try:
        changed_at = int(os.stat(ini).st_mtime)
    except OSError as exc:
        ret["result"] = False
        ret["comment"] = f"{ini}: {exc.strerror}"
        return ret
    target = {"server": socket, "protocol": "uwsgi", "host": host, "path": path, "scheme": scheme}
    started = time.monotonic()
    while True:
        seen = _reloaded(name, stats_dir, changed_at)
        if seen is None:
            # Long enough for a view that waits on a database connect.
            answer = __salt__["stackstatus.probe_upstreams"]([target], PROBE_TIMEOUT)[0]  # noqa: F821
            status = answer.get("status")
            if status is not None and (200 <= status < 400 or status == DEPENDENCY_DOWN):
                ret["comment"] = (f"vassal {name} reloaded and answered {status} to GET {path} "
                                  f"after {time.monotonic() - started:.1f} s")
                if status == DEPENDENCY_DOWN:
                    ret["comment"] += " (a dependency of the app is down)"
                return ret
            seen = f"GET {path}: {answer.get('error') or status}"
        if time.monotonic() - started > timeout:
            ret["result"] = False
            ret["comment"] = f"vassal {name} not serving after {timeout} s: {seen}"
            return ret
        time.sleep(0.5)


def _reloaded(name, stats_dir, changed_at):
    """None once every worker was spawned at or after ``changed_at``, else
    what is still missing."""
    answer = __salt__["stackstatus.uwsgi_stats"]([name], stats_dir)[name]  # noqa: F821
    if "error" in answer:
        return f"stats: {answer['error']}"
    try:
        workers = json.loads(answer["stats"])["workers"]
    except (ValueError, KeyError):
        return "stats: not yet readable"
    old = [w["id"] for w in workers if w.get("last_spawn", 0) < changed_at]
    if not workers or old:
        return f"workers {old} spawned before the reload"
    return None

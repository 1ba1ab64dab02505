#!py
"""Each topology host's pillar: site data (topology.sls, apps.sls,
secrets.sls from the pillar roots, the site's first) through the role
registry and the per-role adapters of pillar/stackpillar. A wrong site file
becomes a pillar error naming the key and the host, so nothing is applied."""
import importlib
import sys


def _stackpillar(roots):
    """The library from the first pillar root holding it, loaded afresh."""
    sys.modules.pop("stackpillar", None)
    sys.path[:0] = roots
    try:
        return importlib.import_module("stackpillar")
    finally:
        del sys.path[:len(roots)]


def run():
    roots = __opts__["pillar_roots"].get(saltenv) or []
    lib = _stackpillar(roots)
    try:
        return lib.build_pillar(__opts__["id"], lib.load_site(roots), lib.load_registry())
    except lib.TopologyError as exc:
        # Salt reports _errors as a pillar render failure and applies nothing.
        return {"_errors": [f"pillar {exc} (minion {__opts__['id']})"]}

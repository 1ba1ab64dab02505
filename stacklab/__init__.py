"""stacklab: a multi-host lab for the Salt formulas, one container per host.

Command line: ``./lab --help`` (or ``python -m stacklab``). Python API:
:class:`stacklab.lab.Lab` (documented there and in tests/lab/conftest.py).
"""

from .util import LabError  # noqa: F401


def __getattr__(name):
    if name == "Lab":
        from .lab import Lab

        return Lab
    raise AttributeError(name)

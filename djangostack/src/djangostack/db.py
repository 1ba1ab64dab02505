"""Reads from replicas, writes to the leader, for a database of several hosts.

With several hosts in DJANGO_DB_HOST (the members of a Patroni cluster),
djangostack.settings defines two aliases over the same host list and lets
libpq pick the server at each connection:

    default   target_session_attrs=read-write: the leader, whichever it is
    replica   target_session_attrs=prefer-standby: a standby, the leader
              when no standby answers

and installs the two pieces here: ``PrimaryReplicaRouter`` (DATABASE_ROUTERS)
and ``ReadYourWritesMiddleware`` (first in MIDDLEWARE).

The router sends reads to ``replica`` and writes to ``default``. Once a
request has written (or asked for a connection to write with:
``select_for_update()``, ``get_or_create()``, ``save()``...), its later reads
go to ``default`` too, so a request always sees its own writes; so do reads
inside a transaction opened on ``default`` (``transaction.atomic()``), so a
read-modify-write never reads a replica. The middleware scopes that to one
request. A standby may lag the leader by a moment: another request (the
next page after a POST) can read from a replica that has not replayed the
write yet.

Outside a request (management commands, shells) the same holds for the
whole thread: after its first write it reads from the leader.
"""

import contextvars

from django.db import connections

WRITE_ALIAS = "default"
READ_ALIAS = "replica"

_pinned = contextvars.ContextVar("djangostack_db_pinned_to_leader", default=False)


def pin_to_leader():
    """Send this request's (or thread's) later reads to the leader."""
    _pinned.set(True)


def pinned_to_leader():
    return _pinned.get()


class PrimaryReplicaRouter:
    """Reads to ``replica`` unless this request wrote or a transaction is
    open on ``default``; writes and migrations to ``default``."""

    def db_for_read(self, model, **hints):
        if _pinned.get() or connections[WRITE_ALIAS].in_atomic_block:
            return WRITE_ALIAS
        return READ_ALIAS

    def db_for_write(self, model, **hints):
        _pinned.set(True)
        return WRITE_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # Both aliases reach the same data.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == WRITE_ALIAS


class ReadYourWritesMiddleware:
    """Each request starts reading from replicas; the router pins it to the
    leader at its first write. Put it first in MIDDLEWARE, so the session
    and authentication middleware run inside it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _pinned.set(False)
        try:
            return self.get_response(request)
        finally:
            _pinned.reset(token)

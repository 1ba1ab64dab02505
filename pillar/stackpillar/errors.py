"""One error type: its message starts with the pillar key that is wrong."""


class TopologyError(ValueError):
    """Bad site data. ``str(err)`` is ``KEY: what is wrong``, e.g.
    ``topology:hosts:app2:roles: unknown role webserver (known: ...)``."""

    def __init__(self, key, message):
        super().__init__(f"{key}: {message}")
        self.key = key

"""Requests to a lab's site through a load balancer, as a browser sends
them: HTTPS to the load balancer's address, naming the site (SNI and Host).

Used by the benchmark (stacklab/bench.py) and by the lab tests
(tests/lab/stack_checks.py), which add the registry's HTTPS port.
"""
from __future__ import annotations

import http.client
import socket
import ssl

SITE_HOST = "localhost"  # a server name of the demo app (pillar/examples/apps.sls)


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def header(self, name):
        return self.headers.get(name.lower())


class SiteConnection(http.client.HTTPSConnection):
    """HTTPS to a load balancer's address, naming the site (SNI) as a
    browser does. Certificates are checked by the TLS tests, not here."""

    def __init__(self, address, port, timeout):
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        super().__init__(SITE_HOST, port, timeout=timeout, context=context)
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def request(address, path, method="GET", body=None, headers=None, *, port, timeout=30, tls=True):
    """One request to the site at ``address``:``port`` (HTTPS unless tls=False)."""
    conn = SiteConnection(address, port, timeout) if tls else http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": SITE_HOST, **(headers or {})})
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()

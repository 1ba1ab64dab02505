"""Every timeout of an app's request path, derived from one setting:
apps:<app>:request_timeout, the longest a request may run (seconds).

From the inside out, each shorter than the one around it, so the innermost
layer that still has a choice ends a slow request, and nothing outside it
retries what it ended:

    statement_timeout  request_timeout - 5  PostgreSQL cancels the query; the
                                            view gets an exception, Django
                                            answers 500 (and mails it): a
                                            response, which the load balancer
                                            neither retries nor counts
    harakiri           request_timeout      uWSGI kills the worker (a request
                                            stuck outside the database)
    lb_read_timeout    request_timeout + 5  nginx gives up only if harakiri
                                            did not fire (it checks about once
                                            a second): never while a worker
                                            still runs the request
    retry window       5 s                  nginx passes a failed request to
                                            the next app host only within its
                                            first 5 s (a refused connect, a
                                            host gone, a worker dead at once),
                                            so a request killed by harakiri
                                            (always older) is never repeated
                                            on another host
"""
from .errors import TopologyError

REQUEST_TIMEOUT = 30
REQUEST_TIMEOUT_MIN, REQUEST_TIMEOUT_MAX = 10, 3600
# The view gets 5 s after a cancelled query to answer (and send its error
# mail, whose own timeout is 5 s: djangostack.settings) before harakiri.
STATEMENT_MARGIN = 5
# uWSGI's master checks harakiri about once a second; 5 s covers it.
LB_READ_MARGIN = 5
# Long enough for a connect to a host that is gone (the load balancer's
# app_connect_timeout, 1 s) and a second try; shorter than any harakiri.
RETRY_WINDOW = 5
# A request harakiri killed is always older than the window.
assert RETRY_WINDOW < REQUEST_TIMEOUT_MIN

# The env file variable the statement timeout travels in (djangostack).
STATEMENT_TIMEOUT_VARIABLE = "DJANGO_DB_STATEMENT_TIMEOUT"


def app_timeouts(spec):
    """The figures of one app (its checked apps.sls entry), in seconds."""
    request = spec.get("request_timeout", REQUEST_TIMEOUT)
    return {
        "request": request,
        "statement": request - STATEMENT_MARGIN,
        "harakiri": request,
        # A reload or recycle lets a worker finish its requests: as long as
        # harakiri would (uWSGI's worker-reload-mercy).
        "reload_mercy": request,
        "lb_read": request + LB_READ_MARGIN,
        "lb_retry_window": RETRY_WINDOW,
    }


def check_request_timeout(key, value):
    """apps:<app>:request_timeout: whole seconds within the range the
    margins above leave room in."""
    if isinstance(value, bool) or not isinstance(value, int) \
            or not REQUEST_TIMEOUT_MIN <= value <= REQUEST_TIMEOUT_MAX:
        raise TopologyError(key, f"must be whole seconds between {REQUEST_TIMEOUT_MIN} and "
                            f"{REQUEST_TIMEOUT_MAX} (got {value!r}); the statement timeout is "
                            f"{STATEMENT_MARGIN} s shorter, the load balancer's {LB_READ_MARGIN} s longer")
    return value


def check_timeouts(apps, app_hosts):
    """What apps.sls may set beside request_timeout must agree with it: a
    statement timeout given in an app's environment may only be shorter.
    Errors name the key and the app hosts it would reach."""
    hosts = ", ".join(app_hosts)
    for name, spec in apps.items():
        given = (spec.get("environment") or {}).get(STATEMENT_TIMEOUT_VARIABLE)
        if given is None:
            continue
        key = f"apps:{name}:environment:{STATEMENT_TIMEOUT_VARIABLE}"
        limit = app_timeouts(spec)["harakiri"]
        try:
            seconds = int(str(given).strip())
        except ValueError:
            seconds = None
        if seconds is None or not 0 < seconds < limit:
            raise TopologyError(key, f"must be whole seconds above 0 and below the app's harakiri, {limit} s "
                                f"(apps:{name}:request_timeout), so the database stops a query before "
                                f"uWSGI kills the worker running it (got {given!r}; on {hosts})")

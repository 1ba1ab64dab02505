"""Production settings for a Django project deployed by the django formula.

A project's settings module does `from djangostack.settings import *` and adds
INSTALLED_APPS, ROOT_URLCONF and whatever else is its own. Everything here is
read from the env file named by DJANGO_ENV_FILE (see djangostack.env); the
formula writes that file from pillar, so the variable names below are the
contract between the two, listed with their defaults in the project's
README.md.
"""

import json as _json

from djangostack.env import env_bool as _bool
from djangostack.env import env_int as _int
from djangostack.env import env_list as _list
from djangostack.env import env_str as _str
from djangostack.env import load_env_file as _load_env_file

_load_env_file()

DEBUG = False
SECRET_KEY = _str("DJANGO_SECRET_KEY", required=True)
ALLOWED_HOSTS = _list("DJANGO_ALLOWED_HOSTS")

# Mail goes through the app's relay, DJANGO_EMAIL_HOST, or nowhere: with no
# relay there are no ADMINS, no mail_admins handler (LOGGING below) and a
# backend that sends nothing and says so, never Django's default of
# localhost:25, where no server runs and every error mail would be lost.
EMAIL_HOST = _str("DJANGO_EMAIL_HOST")
_MAIL = EMAIL_HOST is not None
# Each TLS mode with its usual port: STARTTLS on submission, implicit TLS,
# or plain SMTP to a relay on the private network.
_EMAIL_TLS_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
_EMAIL_TLS = _str("DJANGO_EMAIL_TLS", "starttls")
if _EMAIL_TLS not in _EMAIL_TLS_PORTS:
    from django.core.exceptions import ImproperlyConfigured as _ImproperlyConfigured

    raise _ImproperlyConfigured(f"DJANGO_EMAIL_TLS={_EMAIL_TLS!r}: one of {', '.join(_EMAIL_TLS_PORTS)}")
if _MAIL:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = _int("DJANGO_EMAIL_PORT", _EMAIL_TLS_PORTS[_EMAIL_TLS])
    EMAIL_USE_TLS = _EMAIL_TLS == "starttls"
    EMAIL_USE_SSL = _EMAIL_TLS == "ssl"
    EMAIL_HOST_USER = _str("DJANGO_EMAIL_USER", "")
    EMAIL_HOST_PASSWORD = _str("DJANGO_EMAIL_PASSWORD", "")
else:
    EMAIL_BACKEND = "djangostack.mail.NoMailBackend"
# Error mail is sent inside the failing request: a relay that does not
# answer holds the worker this long (Django's default: forever, until
# harakiri kills it).
EMAIL_TIMEOUT = _int("DJANGO_EMAIL_TIMEOUT", 5)
# Error mails (mail_admins below); JSON [["Name", "email"], ...].
ADMINS = [tuple(admin) for admin in _json.loads(_str("DJANGO_ADMINS", "[]"))] if _MAIL else []
MANAGERS = ADMINS
SERVER_EMAIL = _str("DJANGO_SERVER_EMAIL", "root@localhost")
DEFAULT_FROM_EMAIL = _str("DJANGO_DEFAULT_FROM_EMAIL", SERVER_EMAIL)

USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# DJANGO_DB_HOST is one host, or every member of a Patroni cluster
# (comma-separated): libpq tries them in turn at each connection and keeps
# the one that accepts writes, so a failover needs no settings change.
_DB_HOSTS = [h.strip() for h in _str("DJANGO_DB_HOST", required=True).split(",") if h.strip()]
_DB_PORT = _str("DJANGO_DB_PORT", "")
if "," in _DB_PORT:
    # One port per host, in the hosts' order.
    _ports = [p.strip() for p in _DB_PORT.split(",")]
    if len(_ports) != len(_DB_HOSTS) or not all(p.isdigit() for p in _ports):
        from django.core.exceptions import ImproperlyConfigured as _ImproperlyConfigured

        raise _ImproperlyConfigured(
            f"DJANGO_DB_PORT={_DB_PORT!r}: one port, or one per host of DJANGO_DB_HOST ({len(_DB_HOSTS)})"
        )
    _DB_PORT = ",".join(_ports)
else:
    _DB_PORT = _int("DJANGO_DB_PORT", 5432)

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",  # psycopg 3
        "HOST": ",".join(_DB_HOSTS),
        "PORT": _DB_PORT,
        "NAME": _str("DJANGO_DB_NAME", required=True),
        "USER": _str("DJANGO_DB_USER", required=True),
        "PASSWORD": _str("DJANGO_DB_PASSWORD", ""),
        # One connection per uWSGI thread, kept across requests: no TCP and
        # auth handshake per request. With 0 (a connection per request)
        # /healthz through the load balancer fell from 844 to 77 req/s and
        # the demo page from 202 to 56 (three-tier lab, 2026-11-23).
        "CONN_MAX_AGE": _int("DJANGO_DB_CONN_MAX_AGE", 300),
        # ...and checked before reuse, so a restarted database costs no errors
        # (and a connection a failover broke is replaced at the next request).
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            # With several hosts every new connection tries them in order and
            # a host that is down costs its whole timeout, so a short one (a
            # live server on the private network answers in milliseconds).
            "connect_timeout": _int("DJANGO_DB_CONNECT_TIMEOUT", 5 if len(_DB_HOSTS) == 1 else 2),
            "sslmode": _str("DJANGO_DB_SSLMODE", "prefer"),
        },
    }
}
# PostgreSQL cancels a query after this many seconds (the formula writes
# one below uWSGI's harakiri, so a query a killed worker abandoned does not
# run on; the view gets an error and answers 500). 0 or unset: no limit
# (the formula's migrate runs with 0).
_STATEMENT_TIMEOUT = _int("DJANGO_DB_STATEMENT_TIMEOUT", 0)
if _STATEMENT_TIMEOUT > 0:
    DATABASES["default"]["OPTIONS"]["options"] = f"-c statement_timeout={_STATEMENT_TIMEOUT}s"

if len(_DB_HOSTS) > 1:
    # The leader, whichever host it is now.
    DATABASES["default"]["OPTIONS"]["target_session_attrs"] = "read-write"
    if _bool("DJANGO_DB_READ_REPLICAS", True):
        # Reads from a standby when one answers (the leader otherwise); the
        # router sends reads here, and a request's reads after its first
        # write to the leader (djangostack.db).
        DATABASES["replica"] = {
            **DATABASES["default"],
            "OPTIONS": {**DATABASES["default"]["OPTIONS"], "target_session_attrs": "prefer-standby"},
            # Tests run against default's test database through this alias.
            "TEST": {"MIRROR": "default"},
        }
        import psycopg as _psycopg

        if _psycopg.pq.version() >= 160000:
            # Each connection picks among the standbys at random (libpq 16+),
            # so app hosts spread their reads.
            DATABASES["replica"]["OPTIONS"]["load_balance_hosts"] = "random"
        DATABASE_ROUTERS = ["djangostack.db.PrimaryReplicaRouter"]
        MIDDLEWARE = ["djangostack.db.ReadYourWritesMiddleware"] + MIDDLEWARE

CACHES = {
    "default": {
        "BACKEND": "djangostack.cache.PersistentPyMemcacheCache",
        # All cache hosts; keys are spread over them by consistent hashing.
        "LOCATION": _list("DJANGO_CACHE_SERVERS", ["127.0.0.1:11211"]),
        # Apps sharing the memcached hosts never see each other's keys.
        "KEY_PREFIX": _str("DJANGO_CACHE_KEY_PREFIX", ""),
        "TIMEOUT": _int("DJANGO_CACHE_TIMEOUT", 300),
        "OPTIONS": {
            # Memcached answers in well under a millisecond; a host that does
            # not must not hold requests for long.
            "connect_timeout": 0.5,
            "timeout": 0.5,
            "no_delay": True,
            # A cache host that fails twice within a second is left out of
            # the hash ring for 30 s; its keys go to the others meanwhile.
            "retry_attempts": 2,
            "retry_timeout": 1,
            "dead_timeout": 30,
            # A cache outage reads as misses, not as 500s (/healthz reports it).
            "ignore_exc": True,
        },
    }
}

# Sessions survive a cache flush or a lost cache host (the database has them).
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # Templates are compiled once per process. Without it the demo
            # page through the load balancer fell from 202 to 175 req/s
            # (three-tier lab, 2026-11-23).
            "loaders": [
                (
                    "django.template.loaders.cached.Loader",
                    [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                    ],
                )
            ],
        },
    }
]

# collectstatic writes to the local STATIC_ROOT (its staticfiles.json maps
# names to hashed names when pages are rendered); the leader publishes the
# tree to the media hosts, which serve /static/.
STATIC_ROOT = _str("DJANGO_STATIC_ROOT")
STATIC_URL = _str("DJANGO_STATIC_URL", "/static/")
MEDIA_URL = _str("DJANGO_MEDIA_URL", "/media/")
STORAGES = {
    "default": {
        "BACKEND": "djangostack.storage.MediaHostsStorage",
        "OPTIONS": {
            "write_urls": _list("DJANGO_MEDIA_WRITE_URLS"),
            # app:token, HTTP Basic on every request to the write URLs.
            "credential": _str("DJANGO_MEDIA_WRITE_CREDENTIAL"),
            "timeout": _int("DJANGO_MEDIA_TIMEOUT", 10),
        },
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
    },
}

# To stderr: uWSGI passes it to the journal. Errors are also mailed to
# ADMINS when the app has a relay (without one there is no mail handler).
_LOG_HANDLERS = {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}}
if _MAIL:
    _LOG_HANDLERS["mail_admins"] = {"level": "ERROR", "class": "django.utils.log.AdminEmailHandler"}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(levelname)s %(name)s: %(message)s"},
    },
    "handlers": _LOG_HANDLERS,
    "root": {"handlers": ["stderr"], "level": _str("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {
            "handlers": list(_LOG_HANDLERS),
            "level": _str("DJANGO_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
    },
}

# The load balancers terminate TLS and set X-Forwarded-Proto (overwriting
# whatever the client sent).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if _bool("DJANGO_HTTPS", False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    # Health checks come over plain HTTP from the load balancers.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = _int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = _bool("DJANGO_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is the site owner's call (a submission to the browsers'
        # list, hard to undo), not a deploy fault: DJANGO_HSTS_PRELOAD=true.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

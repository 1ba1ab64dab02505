"""The settings contract (README.md): what djangostack.settings makes of an env
file. Each case imports the settings in a fresh interpreter, as uWSGI and
manage.py do, so module-level reads see that case's file only."""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest


README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
SETTINGS = pathlib.Path(__file__).resolve().parents[1] / "src" / "djangostack" / "settings.py"

PROBE = """
import json
from djangostack import settings as s
db = s.DATABASES["default"]
cache = s.CACHES["default"]
print(json.dumps({
    "SECRET_KEY": s.SECRET_KEY, "ALLOWED_HOSTS": s.ALLOWED_HOSTS, "ADMINS": s.ADMINS,
    "DEBUG": s.DEBUG, "HOST": db["HOST"], "PORT": db["PORT"], "NAME": db["NAME"],
    "USER": db["USER"], "PASSWORD": db["PASSWORD"], "CONN_MAX_AGE": db["CONN_MAX_AGE"],
    "LOCATION": cache["LOCATION"], "KEY_PREFIX": cache["KEY_PREFIX"],
    "write_urls": s.STORAGES["default"]["OPTIONS"]["write_urls"],
    "credential": s.STORAGES["default"]["OPTIONS"]["credential"],
    "STATIC_ROOT": s.STATIC_ROOT, "SSL_REDIRECT": getattr(s, "SECURE_SSL_REDIRECT", False),
    "HSTS": getattr(s, "SECURE_HSTS_SECONDS", 0), "SERVER_EMAIL": s.SERVER_EMAIL,
    "DEFAULT_FROM_EMAIL": s.DEFAULT_FROM_EMAIL, "EMAIL_BACKEND": s.EMAIL_BACKEND,
    "EMAIL_HOST": s.EMAIL_HOST, "EMAIL_PORT": getattr(s, "EMAIL_PORT", None),
    "EMAIL_USE_TLS": getattr(s, "EMAIL_USE_TLS", False), "EMAIL_USE_SSL": getattr(s, "EMAIL_USE_SSL", False),
    "EMAIL_HOST_USER": getattr(s, "EMAIL_HOST_USER", ""),
    "EMAIL_HOST_PASSWORD": getattr(s, "EMAIL_HOST_PASSWORD", ""), "EMAIL_TIMEOUT": s.EMAIL_TIMEOUT,
    "LOG_HANDLERS": sorted(s.LOGGING["handlers"]), "DJANGO_HANDLERS": s.LOGGING["loggers"]["django"]["handlers"],
    "OPTIONS": db["OPTIONS"],
}))
"""

REQUIRED = {
    "DJANGO_SECRET_KEY": "k=with#odd 'chars'",
    "DJANGO_DB_HOST": "10.0.0.5",
    "DJANGO_DB_NAME": "demo",
    "DJANGO_DB_USER": "demo",
}


def load(tmp_path, values):
    path = tmp_path / "app.env"
    path.write_text("# written like the formula's\n" + "".join(f"{k}={v}\n" for k, v in values.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["DJANGO_ENV_FILE"] = str(path)
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    return proc


def settings_from(tmp_path, values):
    proc = load(tmp_path, values)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_required_values_and_defaults(tmp_path):
    s = settings_from(tmp_path, REQUIRED)
    assert s["SECRET_KEY"] == "k=with#odd 'chars'"
    assert s["DEBUG"] is False
    assert s["ALLOWED_HOSTS"] == []
    assert s["ADMINS"] == []
    assert (s["HOST"], s["PORT"], s["NAME"], s["USER"], s["PASSWORD"]) == ("10.0.0.5", 5432, "demo", "demo", "")
    assert s["CONN_MAX_AGE"] == 300
    assert s["LOCATION"] == ["127.0.0.1:11211"]
    assert s["KEY_PREFIX"] == ""
    assert s["write_urls"] == []
    assert s["credential"] is None
    assert s["STATIC_ROOT"] is None
    assert s["SSL_REDIRECT"] is False
    assert s["SERVER_EMAIL"] == s["DEFAULT_FROM_EMAIL"] == "root@localhost"


def test_every_value_the_formula_writes(tmp_path):
    s = settings_from(tmp_path, {
        **REQUIRED,
        "DJANGO_ALLOWED_HOSTS": "www.example.com,example.com",
        "DJANGO_ADMINS": '[["Ops", "ops@example.com"]]',
        "DJANGO_EMAIL_HOST": "smtp.example.com",
        "DJANGO_EMAIL_PORT": "2587",
        "DJANGO_EMAIL_TLS": "starttls",
        "DJANGO_EMAIL_USER": "demo@example.com",
        "DJANGO_EMAIL_PASSWORD": "s#cr=t",
        "DJANGO_DB_STATEMENT_TIMEOUT": "25",
        "DJANGO_HTTPS": "true",
        "DJANGO_DB_PORT": "5433",
        "DJANGO_DB_PASSWORD": "p=w#d",
        "DJANGO_CACHE_SERVERS": "10.0.0.6:11211, 10.0.0.7:11211",
        "DJANGO_CACHE_KEY_PREFIX": "demo",
        "DJANGO_MEDIA_WRITE_URLS": "http://10.0.0.8:8081/demo/media/,http://10.0.0.9:8081/demo/media/",
        "DJANGO_MEDIA_WRITE_CREDENTIAL": "demo:a-b_C=",
        "DJANGO_STATIC_ROOT": "/srv/apps/demo/static",
        "DJANGO_DB_CONN_MAX_AGE": "60",
        "DJANGO_SERVER_EMAIL": "app@example.com",
    })
    assert s["ALLOWED_HOSTS"] == ["www.example.com", "example.com"]
    assert s["ADMINS"] == [["Ops", "ops@example.com"]]
    assert s["SSL_REDIRECT"] is True and s["HSTS"] == 31536000
    assert (s["PORT"], s["PASSWORD"], s["CONN_MAX_AGE"]) == (5433, "p=w#d", 60)
    assert s["LOCATION"] == ["10.0.0.6:11211", "10.0.0.7:11211"]
    assert s["KEY_PREFIX"] == "demo"
    assert s["write_urls"] == ["http://10.0.0.8:8081/demo/media/", "http://10.0.0.9:8081/demo/media/"]
    assert s["credential"] == "demo:a-b_C="
    assert s["STATIC_ROOT"] == "/srv/apps/demo/static"
    assert s["DEFAULT_FROM_EMAIL"] == "app@example.com"
    assert (s["EMAIL_HOST"], s["EMAIL_PORT"], s["EMAIL_USE_TLS"], s["EMAIL_USE_SSL"]) == (
        "smtp.example.com", 2587, True, False)
    assert (s["EMAIL_HOST_USER"], s["EMAIL_HOST_PASSWORD"], s["EMAIL_TIMEOUT"]) == ("demo@example.com", "s#cr=t", 5)
    assert s["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert s["DJANGO_HANDLERS"] == ["stderr", "mail_admins"]
    assert s["OPTIONS"]["options"] == "-c statement_timeout=25s"


def test_without_a_relay_no_mail_is_attempted(tmp_path):
    """No DJANGO_EMAIL_HOST (pillar mail: false): no ADMINS even if given, no
    mail handler, a backend that sends nothing; never localhost:25."""
    s = settings_from(tmp_path, {**REQUIRED, "DJANGO_ADMINS": '[["Ops", "ops@example.com"]]'})
    assert s["ADMINS"] == [] and s["EMAIL_HOST"] is None
    assert s["EMAIL_BACKEND"] == "djangostack.mail.NoMailBackend"
    assert s["LOG_HANDLERS"] == ["stderr"] and s["DJANGO_HANDLERS"] == ["stderr"]
    assert "options" not in s["OPTIONS"]


@pytest.mark.parametrize("tls, port, use_tls, use_ssl", [("ssl", 465, False, True), ("none", 25, False, False),
                                                          ("starttls", 587, True, False)])
def test_each_tls_mode_has_its_port(tmp_path, tls, port, use_tls, use_ssl):
    s = settings_from(tmp_path, {**REQUIRED, "DJANGO_EMAIL_HOST": "relay", "DJANGO_EMAIL_TLS": tls})
    assert (s["EMAIL_PORT"], s["EMAIL_USE_TLS"], s["EMAIL_USE_SSL"]) == (port, use_tls, use_ssl)


def test_a_wrong_tls_mode_names_it(tmp_path):
    proc = load(tmp_path, {**REQUIRED, "DJANGO_EMAIL_HOST": "relay", "DJANGO_EMAIL_TLS": "tls"})
    assert proc.returncode != 0 and "DJANGO_EMAIL_TLS='tls'" in proc.stderr


def test_the_no_mail_backend_sends_nothing_and_says_so():
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure()
        django.setup()
    from django.core.exceptions import ImproperlyConfigured
    from django.core.mail import EmailMessage

    from djangostack.mail import NoMailBackend

    message = EmailMessage("subject", "body", "app@example.com", ["ops@example.com"])
    with pytest.raises(ImproperlyConfigured, match="no mail relay"):
        NoMailBackend().send_messages([message])
    assert NoMailBackend(fail_silently=True).send_messages([message]) == 0


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_a_required_value_missing_names_it(tmp_path, missing):
    proc = load(tmp_path, {k: v for k, v in REQUIRED.items() if k != missing})
    assert proc.returncode != 0
    assert f"{missing} is missing from the env file" in proc.stderr


def test_no_env_file_named_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DJANGO_ENV_FILE is not set" in proc.stderr


def test_readme_documents_every_variable_the_settings_read():
    read = set(re.findall(r'"(DJANGO_[A-Z_]+)"', SETTINGS.read_text())) | {"DJANGO_ENV_FILE"}
    documented = set(re.findall(r"^\| `(DJANGO_[A-Z_]+)` \|", README.read_text(), re.M))
    assert read - documented == set(), "read by settings.py but not in README.md's tables"
    assert documented - read - {"DJANGO_SETTINGS_MODULE"} == set(), "in README.md but not read"


def test_the_installed_package_is_imported():
    """Not the project directory as a namespace package (it is named
    djangostack too and may be on sys.path with the repository root)."""
    import djangostack

    assert djangostack.__file__ and djangostack.__file__.endswith("djangostack/__init__.py")

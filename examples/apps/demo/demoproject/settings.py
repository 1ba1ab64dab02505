"""Demo project settings: production settings come from djangostack (read
from the env file the django formula writes); only the project's own parts
are here."""

from djangostack.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "visits",
]

MIDDLEWARE = MIDDLEWARE + ["visits.middleware.AppHostHeaderMiddleware"]  # noqa: F405

ROOT_URLCONF = "demoproject.urls"
WSGI_APPLICATION = "demoproject.wsgi.application"

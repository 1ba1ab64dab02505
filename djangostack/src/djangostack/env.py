"""The app's env file: KEY=VALUE lines written by the django formula.

No shell syntax: no quotes, no `export`, no expansion; the value is everything
after the first '=', so secrets may hold any character except a newline.
Blank lines and lines starting with '#' are skipped.

Stdlib only until a value is wrong (the error is Django's
ImproperlyConfigured): djangostack.publish reads the file too.
"""

import os


def _improperly_configured(message):
    from django.core.exceptions import ImproperlyConfigured

    return ImproperlyConfigured(message)


# Values read from the env file. Kept out of os.environ on purpose: uWSGI's
# graceful reload re-executes the master with its environment, so values put
# there would outlive the file they came from and a reload would not pick up
# a changed file (a moved cache host, a new password).
_file_values = {}


def read_env_file(path):
    values = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise _improperly_configured(f"{path}:{number}: expected KEY=VALUE")
            values[key.strip()] = value
    return values


def load_env_file(path=None):
    """Read the env file named by DJANGO_ENV_FILE.

    Variables set in the process environment win, so one can be overridden
    for a single command.
    """
    path = path or os.environ.get("DJANGO_ENV_FILE")
    if not path:
        raise _improperly_configured(
            "DJANGO_ENV_FILE is not set: it names the app's env file "
            "(the uWSGI vassal and Salt's manage.py runs set it)"
        )
    _file_values.clear()
    _file_values.update(read_env_file(path))


def _get(name):
    return os.environ.get(name, _file_values.get(name, ""))


def env_str(name, default=None, required=False):
    value = _get(name)
    if value == "":
        if required:
            raise _improperly_configured(f"{name} is missing from the env file")
        return default
    return value


def env_list(name, default=()):
    """Comma-separated list; blanks dropped."""
    value = _get(name)
    if not value.strip():
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_bool(name, default=False):
    value = _get(name).strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise _improperly_configured(f"{name}={value!r} is not a boolean")


def env_int(name, default):
    value = _get(name).strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise _improperly_configured(f"{name}={value!r} is not an integer") from None

"""Has the database every migration of this code? For app hosts other than
the leader, before their vassal loads new code.

    python -m djangostack.migrated

Exit 0: every migration of the code is applied, or the database cannot be
reached (nothing can be known, and nothing can be harmed: the code cannot
write there either; a host the database does not let in yet, say).
Exit 1: the database answers and lacks migrations this code has; they are
named on stderr. Django's `migrate --check` exits 1 in both cases, which
would stop a new host from converging before its peers know it.
Runs with the app's settings (DJANGO_SETTINGS_MODULE, DJANGO_ENV_FILE).
"""

import sys


def unapplied():
    """The migrations the code has and the database lacks, as app.name;
    None when the database cannot be reached."""
    import django
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor
    from django.db.utils import OperationalError

    django.setup()
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except OperationalError:
        return None
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def main():
    missing = unapplied()
    if missing is None:
        print("the database cannot be reached: nothing to compare", file=sys.stderr)
        return 0
    if missing:
        print("unapplied migrations: " + ", ".join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

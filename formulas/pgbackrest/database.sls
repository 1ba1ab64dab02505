{#- A database host's side of backups (the database role applies it):
    pgbackrest.conf pointing at the repository, for PostgreSQL's
    archive_command (set by the postgres pillar) and for restores; the TLS
    server the repository host takes backups through; the restore command.
    Without a repository (no backup host) pgBackRest's configuration goes. -#}
{%- from 'pgbackrest/map.jinja' import pgbackrest with context %}
{%- if pgbackrest.repository %}
include:
  - pgbackrest

pgbackrest-restore-command:
  file.managed:
    - name: {{ pgbackrest.restore_command }}
    - source: salt://pgbackrest/files/restore-scratch
    - template: jinja
    - context:
        name: {{ pgbackrest.restore_command | json }}
        stanza: {{ pgbackrest.stanza | json }}
        scratch_dir: {{ pgbackrest.scratch_dir | json }}
        port: {{ pgbackrest.scratch_port }}
    - user: root
    - group: root
    - mode: '0755'
{%- else %}
include:
  - pgbackrest.clean
{%- endif %}

{#- The backup role left this host: its backup timers stop and go. The
    repository's backups and WAL stay (data is never removed); so does
    pgBackRest's configuration while this host is still a database host
    with a repository. Needs no pillar. -#}
{%- from 'pgbackrest/map.jinja' import pgbackrest with context %}
{%- if not pgbackrest.repository %}
include:
  - pgbackrest.clean
{%- endif %}
{%- for type in pgbackrest.schedule | sort %}

pgbackrest-backup-{{ type }}-timer-stopped:
  service.dead:
    - name: pgbackrest-backup-{{ type }}.timer
    - enable: False

pgbackrest-backup-{{ type }}-timer-absent:
  file.absent:
    - name: /etc/systemd/system/pgbackrest-backup-{{ type }}.timer
    - require:
      - service: pgbackrest-backup-{{ type }}-timer-stopped
{%- endfor %}

pgbackrest-backup-unit-absent:
  file.absent:
    - name: /etc/systemd/system/{{ pgbackrest.backup_unit }}.service

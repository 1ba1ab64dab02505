{#- The repository host (the backup role): the stanza, full and
    differential backups on systemd timers, and a first full backup as soon
    as the stanza exists. Backups run here and reach the database hosts
    through their TLS servers; pgBackRest picks the member that leads. -#}
{%- from 'pgbackrest/map.jinja' import pgbackrest with context %}
{%- if not pgbackrest.is_repository %}
{{- raise('pillar pgbackrest:databases must list the database hosts this repository backs up') }}
{%- endif %}
{%- set info = pgbackrest.repo_path ~ '/backup/' ~ pgbackrest.stanza ~ '/backup.info' %}

include:
  - pgbackrest

pgbackrest-repository-directory:
  file.directory:
    - name: {{ pgbackrest.repo_path }}
    - user: postgres
    - group: postgres
    - mode: '0750'
    - require:
      - pkg: pgbackrest-package-installed

{#- Through the database hosts' TLS servers (the database step runs
    first); stanza-create refuses a repository of another cluster. Until the
    stanza exists the leader's asynchronous archive-push keeps retrying and
    holds its archive lock at times, which stanza-create then waits out. #}
pgbackrest-stanza-created:
  cmd.run:
    - name: {{ pgbackrest.command }} stanza-create
    - runas: postgres
    - creates: {{ info }}
    - retry:
        attempts: 20
        interval: 3
    - require:
      - file: pgbackrest-config
      - file: pgbackrest-repository-directory
{%- if pgbackrest.server.clients %}
      - service: pgbackrest-server-running
{%- endif %}

pgbackrest-backup-unit:
  file.managed:
    - name: /etc/systemd/system/{{ pgbackrest.backup_unit }}.service
    - contents: |
        # Managed by Salt (pgbackrest formula): one backup of the type %i
        # (full, diff, incr) of stanza {{ pgbackrest.stanza }}.
        [Unit]
        Description=pgBackRest %i backup of stanza {{ pgbackrest.stanza }}
        After=network-online.target
        Wants=network-online.target

        [Service]
        Type=oneshot
        User=postgres
        Group=postgres
        ExecStart=/usr/bin/{{ pgbackrest.command }} --type=%i backup
    - user: root
    - group: root
    - mode: '0644'
{%- for type, calendar in pgbackrest.schedule | dictsort %}

pgbackrest-backup-{{ type }}-timer:
  file.managed:
    - name: /etc/systemd/system/pgbackrest-backup-{{ type }}.timer
    - contents: |
        # Managed by Salt (pgbackrest formula).
        [Unit]
        Description=pgBackRest {{ type }} backup of stanza {{ pgbackrest.stanza }}

        [Timer]
        OnCalendar={{ calendar }}
        # A backup missed while the host was off runs when it is back.
        Persistent=true
        Unit={{ pgbackrest.backup_unit }}{{ type }}.service

        [Install]
        WantedBy=timers.target
    - user: root
    - group: root
    - mode: '0644'
{%- endfor %}

pgbackrest-units-loaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: pgbackrest-backup-unit
{%- for type in pgbackrest.schedule | sort %}
      - file: pgbackrest-backup-{{ type }}-timer
{%- endfor %}
{%- for type in pgbackrest.schedule | sort %}

pgbackrest-backup-{{ type }}-timer-running:
  service.running:
    - name: pgbackrest-backup-{{ type }}.timer
    - enable: True
    - require:
      - cmd: pgbackrest-units-loaded
      - cmd: pgbackrest-stanza-created
{%- endfor %}

{#- No window without a backup: the first full one starts once the stanza
    exists, in the background (a large database takes a while). #}
pgbackrest-first-full-backup-started:
  cmd.run:
    - name: systemctl start --no-block {{ pgbackrest.backup_unit }}full.service
    - unless: >-
        ls -d {{ pgbackrest.repo_path }}/backup/{{ pgbackrest.stanza }}/*F >/dev/null 2>&1
        || systemctl is-active -q {{ pgbackrest.backup_unit }}full.service
        || test "$(systemctl show -P ActiveState {{ pgbackrest.backup_unit }}full.service)" = activating
    - require:
      - cmd: pgbackrest-stanza-created
      - cmd: pgbackrest-units-loaded

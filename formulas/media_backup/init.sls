{#- Snapshots of the uploads on the backup host (rsnapshot, Debian's):
    hard-linked, so an upload is stored once however many snapshots hold
    it; a first snapshot as soon as the host is deployed; a restore that
    writes missing uploads back to the media hosts. -#}
{%- from 'media_backup/map.jinja' import media_backup with context %}
{%- set b = media_backup %}

media-backup-package-installed:
  pkg.installed:
    - name: {{ b.package }}
    # Its recommends bring cron and a mail server (exim4, which fails
    # without IPv6); the snapshots run from systemd timers, over rsync://.
    - install_recommends: False

media-backup-snapshot-root:
  file.directory:
    - name: {{ b.snapshot_root }}
    - user: root
    - group: root
    - mode: '0700'

media-backup-config:
  file.managed:
    - name: {{ b.config_file }}
    - source: salt://media_backup/files/rsnapshot.conf.jinja
    - template: jinja
    - context:
        b: {{ b | json }}
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - pkg: media-backup-package-installed

media-backup-config-valid:
  cmd.run:
    - name: rsnapshot -c {{ b.config_file }} configtest
    - onchanges:
      - file: media-backup-config

{%- for name in ['restore', 'status'] %}

media-backup-{{ name }}-command:
  file.managed:
    - name: {{ b[name ~ '_command'] }}
    - source: salt://media_backup/files/media-{{ 'restore' if name == 'restore' else 'backup-status' }}.jinja
    - template: jinja
    - context:
        b: {{ b | json }}
    - user: root
    - group: root
    - mode: '0755'
{%- endfor %}

media-backup-unit:
  file.managed:
    - name: /etc/systemd/system/{{ b.unit }}.service
    - contents: |
        # Managed by Salt (media_backup formula): one rsnapshot run of level %i.
        [Unit]
        Description=Snapshot of the uploads (%i)
        After=network-online.target
        Wants=network-online.target

        [Service]
        Type=oneshot
        ExecStart=/usr/bin/rsnapshot -c {{ b.config_file }} %i
    - user: root
    - group: root
    - mode: '0644'
{%- for level in b.levels %}

media-backup-{{ level.name }}-timer:
  file.managed:
    - name: /etc/systemd/system/media-backup-{{ level.name }}.timer
    - contents: |
        # Managed by Salt (media_backup formula).
        [Unit]
        Description=Snapshot of the uploads ({{ level.name }})

        [Timer]
        OnCalendar={{ level.schedule }}
        Persistent=true
        Unit={{ b.unit }}{{ level.name }}.service

        [Install]
        WantedBy=timers.target
    - user: root
    - group: root
    - mode: '0644'
{%- endfor %}

media-backup-units-loaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: media-backup-unit
{%- for level in b.levels %}
      - file: media-backup-{{ level.name }}-timer
{%- endfor %}
{%- for level in b.levels %}

media-backup-{{ level.name }}-timer-running:
  service.running:
    - name: media-backup-{{ level.name }}.timer
    - enable: True
    - require:
      - cmd: media-backup-units-loaded
      - file: media-backup-config
{%- endfor %}

{%- set first = b.levels[0].name %}

media-backup-first-snapshot-started:
  cmd.run:
    - name: systemctl start --no-block {{ b.unit }}{{ first }}.service
    - unless: >-
        test -d {{ b.snapshot_root }}/{{ first }}.0
        || systemctl is-active -q {{ b.unit }}{{ first }}.service
        || test "$(systemctl show -P ActiveState {{ b.unit }}{{ first }}.service)" = activating
    - require:
      - cmd: media-backup-units-loaded
      - file: media-backup-config
      - file: media-backup-snapshot-root

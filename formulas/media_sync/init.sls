{#- Uploads on every media host: each serves its uploads read only to the
    others (rsync daemon) and copies what it lacks from them: at its first
    deploy, at boot before nginx starts, and every interval. The media tree
    is nginx.media's (applied first).
    Uploads have names of their own (djangostack.storage), so copying only
    what is missing never mixes two files. -#}
{%- from 'media_sync/map.jinja' import media_sync with context %}
{%- set s = media_sync %}
{%- if not s.address or s.address | string in ['0.0.0.0', '::', '*'] %}
{{- raise('pillar media_sync:address is required (the private address rsyncd listens on)') }}
{%- endif %}

media-sync-package-installed:
  pkg.installed:
    - name: {{ s.package }}

media-sync-daemon-config:
  file.managed:
    - name: /etc/rsyncd.conf
    - source: salt://media_sync/files/rsyncd.conf.jinja
    - template: jinja
    - context:
        s: {{ s | json }}
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - pkg: media-sync-package-installed

media-sync-daemon:
{%- if s.readers or s.restorers %}
  service.running:
    - name: {{ s.service }}
    - enable: True
    - watch:
      - file: media-sync-daemon-config
{%- else %}
  service.dead:
    - name: {{ s.service }}
    - enable: False
{%- endif %}

media-sync-command:
  file.managed:
    - name: {{ s.sync_command }}
    - source: salt://media_sync/files/media-sync.jinja
    - template: jinja
    - context:
        s: {{ s | json }}
    - user: root
    - group: root
    - mode: '0755'

media-sync-units:
  file.managed:
    - names:
      - /etc/systemd/system/media-sync.service:
        - contents: |
            # Managed by Salt (media_sync formula).
            [Unit]
            Description=Copy the uploads this media host lacks from the others
            Wants=network-online.target
            After=network-online.target
            # At boot nginx serves only once the copy is done (or failed).
            Before=nginx.service

            [Service]
            Type=oneshot
            User={{ s.user }}
            Group={{ s.group }}
            ExecStart={{ s.sync_command }}

            [Install]
            WantedBy=multi-user.target
      - /etc/systemd/system/media-sync.timer:
        - contents: |
            # Managed by Salt (media_sync formula).
            [Unit]
            Description=Copy missing uploads from the other media hosts every {{ s.interval }}

            [Timer]
            OnUnitInactiveSec={{ s.interval }}
            OnBootSec={{ s.interval }}

            [Install]
            WantedBy=timers.target
    - user: root
    - group: root
    - mode: '0644'

media-sync-units-loaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: media-sync-units

media-sync-at-boot:
  service.enabled:
    - name: media-sync.service
    - require:
      - cmd: media-sync-units-loaded

media-sync-timer:
  service.running:
    - name: media-sync.timer
    - enable: True
    - require:
      - cmd: media-sync-units-loaded

{#- A new host (no marker yet) copies every upload before it gets any
    traffic: the load balancers learn of it in a later deploy step. It
    fails, stopping the deploy, when no other media host answers (retried
    while their daemons start, as in a deploy of several new hosts). #}
media-sync-first-copy:
  cmd.run:
    - name: runuser -u {{ s.user }} -- {{ s.sync_command }} && touch {{ s.state_dir }}/first-copy-done
    - creates: {{ s.state_dir }}/first-copy-done
    - retry:
        attempts: 6
        interval: 10
    - require:
      - file: media-sync-command
      - file: media-sync-state-dir

media-sync-state-dir:
  file.directory:
    - name: {{ s.state_dir }}
    - user: root
    - group: root
    - mode: '0755'

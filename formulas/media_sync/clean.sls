{#- The media role left this host: it stops serving and copying uploads.
    The uploads themselves stay (nginx.media_clean keeps them too). Needs no
    pillar; a no-op on a host that never had the role. -#}
{%- from 'media_sync/map.jinja' import media_sync with context %}

{%- for unit in ['media-sync.timer', 'media-sync.service'] %}

media-sync-{{ unit }}-stopped:
  service.dead:
    - name: {{ unit }}
    - enable: False
{%- endfor %}

media-sync-daemon-stopped:
  service.dead:
    - name: {{ media_sync.service }}
    - enable: False
    - onlyif: grep -q '^# Managed by Salt (media_sync formula)' /etc/rsyncd.conf

media-sync-files-absent:
  file.absent:
    - names:
      - /etc/systemd/system/media-sync.timer
      - /etc/systemd/system/media-sync.service
      - {{ media_sync.sync_command }}
    - require:
      - service: media-sync-media-sync.timer-stopped
      - service: media-sync-media-sync.service-stopped

media-sync-daemon-config-absent:
  file.absent:
    - name: /etc/rsyncd.conf
    - onlyif: grep -q '^# Managed by Salt (media_sync formula)' /etc/rsyncd.conf
    - require:
      - service: media-sync-daemon-stopped

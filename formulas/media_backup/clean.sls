{#- The backup role left this host: the uploads' snapshot timers stop and
    go, with the commands and rsnapshot. The snapshots stay (data is never
    removed).
    Needs no pillar; a no-op on a host that never had the role. -#}
{%- from 'media_backup/map.jinja' import media_backup with context %}
{%- for level in media_backup.levels %}

media-backup-{{ level.name }}-timer-stopped:
  service.dead:
    - name: media-backup-{{ level.name }}.timer
    - enable: False

media-backup-{{ level.name }}-timer-absent:
  file.absent:
    - name: /etc/systemd/system/media-backup-{{ level.name }}.timer
    - require:
      - service: media-backup-{{ level.name }}-timer-stopped
{%- endfor %}

media-backup-files-absent:
  file.absent:
    - names:
      - /etc/systemd/system/{{ media_backup.unit }}.service
      - {{ media_backup.restore_command }}
      - {{ media_backup.status_command }}

media-backup-package-removed:
  pkg.removed:
    - name: {{ media_backup.package }}
    - require:
{%- for level in media_backup.levels %}
      - service: media-backup-{{ level.name }}-timer-stopped
{%- endfor %}

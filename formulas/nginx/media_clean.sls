{#- The media role left this host: its site piece goes and nginx reloads
    if it runs (nginx itself stays: another role may use it), then the apps'
    write credentials (their hashes) go. Files under the media root are never
    touched. Needs no pillar; a no-op on a host that never had the role. -#}
{%- from 'nginx/map.jinja' import nginx with context %}

nginx-media-site-removed:
  file.absent:
    - name: /etc/nginx/sites-enabled/media.conf

nginx-reloaded-without-media-site:
  cmd.run:
    - name: systemctl reload {{ nginx.service }}
    - onlyif: systemctl is-active --quiet {{ nginx.service }}
    - onchanges:
      - file: nginx-media-site-removed

nginx-media-writers-removed:
  file.absent:
    - name: {{ nginx.media.writers_dir }}
    - require:
      - cmd: nginx-reloaded-without-media-site

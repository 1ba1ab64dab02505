{#- Media role: static files and uploads per site, WebDAV writes from the
    app hosts. #}
{%- from 'nginx/map.jinja' import nginx with context %}
{%- set media = nginx.media %}

include:
  - nginx

# nginx (www-data) writes the uploads and collected static files.
nginx-media-root:
  file.directory:
    - name: {{ media.root }}
    - user: {{ nginx.user }}
    - group: {{ nginx.group }}
    - mode: '0755'
    - makedirs: true
    - require:
      - pkg: nginx-package

nginx-media-upload-temp-dir:
  file.directory:
    - name: {{ media.root }}/.dav-tmp
    - user: {{ nginx.user }}
    - group: {{ nginx.group }}
    - mode: '0700'
    - require:
      - file: nginx-media-root

{%- for app in media.sites | sort %}
{%- for kind in ['static', 'media'] %}

nginx-media-{{ app }}-{{ kind }}-dir:
  file.directory:
    - name: {{ media.root }}/{{ app }}/{{ kind }}
    - user: {{ nginx.user }}
    - group: {{ nginx.group }}
    - mode: '0755'
    - makedirs: true
    - require:
      - file: nginx-media-root
{%- endfor %}
{%- endfor %}

nginx-media-site:
  file.managed:
    - name: /etc/nginx/sites-enabled/media.conf
    - source: salt://nginx/files/media.conf.jinja
    - template: jinja
    - context:
        media: {{ media | json }}
    - user: root
    - group: root
    - mode: '0644'
    - check_cmd: /usr/local/sbin/nginx-test-candidate sites-enabled/media.conf
    - require:
      - file: nginx-main-config
      - file: nginx-media-upload-temp-dir
    - watch_in:
      - service: nginx-service

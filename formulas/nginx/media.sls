{#- Media role: static files and uploads per site, WebDAV writes from the
    app hosts, each site's with that app's credential only. #}
{%- from 'nginx/map.jinja' import nginx with context %}
{%- set media = nginx.media %}
{%- for app, site in media.sites | dictsort %}
{%-   if not site.get('dav_password_hash') %}
{{- raise('pillar nginx:media:sites:' ~ app ~ ':dav_password_hash is required: writes to /' ~ app
           ~ '/ need that app\'s credential (see pillar.example)') }}
{%-   endif %}
{%- endfor %}

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

{#- Read by the workers at each request (auth_basic_user_file): a changed
    file counts from the next request, no reload needed. #}
{%- for app, site in media.sites | dictsort %}

nginx-media-{{ app }}-writer:
  file.managed:
    - name: {{ media.writers_dir }}/{{ app }}
    - contents:
      - '# Managed by Salt: who may write /{{ app }}/ on the WebDAV port'
      - {{ (app ~ ':' ~ site.dav_password_hash) | json }}
    - user: root
    - group: {{ nginx.group }}
    - mode: '0640'
    - makedirs: true
    - dir_mode: '0750'
    - show_changes: false
    - require:
      - pkg: nginx-package
{%- endfor %}

# Only the sites' own files: a credential whose site went goes too.
nginx-media-writers-dir:
  file.directory:
    - name: {{ media.writers_dir }}
    - user: root
    - group: {{ nginx.group }}
    - mode: '0750'
    - clean: true
    - require:
      - pkg: nginx-package
{%- for app in media.sites | sort %}
      - file: nginx-media-{{ app }}-writer
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
      - file: nginx-media-writers-dir

# The media site is live when this role's states end, not only once nginx's
# other sites are written: a host that is also an app host publishes its
# static files here later in the same run (a highstate, salt-call --local).
nginx-media-live:
  service.running:
    - name: {{ nginx.service }}
    - reload: true
    - require:
      - pkg: nginx-package
    - watch:
      - file: nginx-media-site

{#- uWSGI in Emperor mode: Debian's packages and unit. One vassal ini per app
    in vassals_dir, written by the formulas that deploy the apps (django)
    through the vassal macro in macros.jinja, never by hand. -#}
{%- from "uwsgi/map.jinja" import uwsgi with context %}

uwsgi-packages:
  pkg.installed:
    - pkgs: {{ uwsgi.pkgs | json }}

uwsgi-vassals-dir:
  file.directory:
    - name: {{ uwsgi.vassals_dir }}
    - user: root
    - group: root
    - mode: '0755'
    - require:
      - pkg: uwsgi-packages

{#- The vassal macro's reload markers (macros.jinja). #}
uwsgi-reload-markers-dir:
  file.directory:
    - name: {{ uwsgi.reload_markers_dir }}
    - user: root
    - group: root
    - mode: '0755'

{#- Debian's emperor.ini drops the emperor to www-data, which would stop
    vassals from switching to their own users. #}
uwsgi-emperor-config:
  file.managed:
    - name: {{ uwsgi.emperor_config }}
    - source: salt://uwsgi/files/emperor.ini.jinja
    - template: jinja
    - context:
        vassals_dir: {{ uwsgi.vassals_dir | json }}
        options: {{ uwsgi.emperor | json }}
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - pkg: uwsgi-packages

{#- Debian 12 and 13 ship the same working Type=notify unit
    (KillSignal=SIGQUIT, Restart=always); only network-online is added. #}
uwsgi-emperor-unit-override:
  file.managed:
    - name: /etc/systemd/system/{{ uwsgi.service }}.service.d/salt.conf
    - source: salt://uwsgi/files/systemd-override.conf
    - makedirs: True
    - user: root
    - group: root
    - mode: '0644'

{#- Restarted only when the emperor's own config changes; apps reload by
    touching their vassal ini. #}
uwsgi-emperor-service:
  service.running:
    - name: {{ uwsgi.service }}
    - enable: True
    - require:
      - file: uwsgi-vassals-dir
    - watch:
      - pkg: uwsgi-packages
      - file: uwsgi-emperor-config
      - file: uwsgi-emperor-unit-override

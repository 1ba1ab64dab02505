{%- from 'memcached/map.jinja' import memcached with context %}

memcached-package-installed:
  pkg.installed:
    - name: {{ memcached.package }}

memcached-config:
  file.managed:
    - name: /etc/memcached.conf
    - source: salt://memcached/files/memcached.conf.jinja
    - template: jinja
    - context:
        memcached: {{ memcached | json }}
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - pkg: memcached-package-installed

memcached-service-running:
  service.running:
    - name: memcached
    - enable: True
    - watch:
      - file: memcached-config

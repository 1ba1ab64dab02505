{#- memcached on the private address(es) only, no UDP. -#}
{%- from 'memcached/map.jinja' import memcached with context %}
{#- memcached has no authentication here: refuse to expose it everywhere. #}
{%- if not memcached.listen or memcached.listen | select('in', ['0.0.0.0', '::', '*', '']) | list %}
{{- raise('memcached:listen must name the private address(es), not ' ~ (memcached.listen | join(',') or 'nothing')) }}
{%- endif %}

memcached-package-installed:
  pkg.installed:
    - name: {{ memcached.package }}

memcached-config:
  file.managed:
    - name: {{ memcached.config_file }}
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
    - name: {{ memcached.service }}
    - enable: True
    - watch:
      - file: memcached-config

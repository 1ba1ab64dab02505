{#- One etcd member on the private address (and loopback for local tools),
    from Debian's etcd-server. The cluster forms when its members first start
    together (the ordered deploy runs them in one step; a member's start waits
    for a majority). -#}
{%- from 'etcd/map.jinja' import etcd with context %}
{%- for key in ['name', 'address'] %}
{%-   if not etcd[key] or etcd[key] | string in ['0.0.0.0', '::', '*'] %}
{{- raise('pillar etcd:' ~ key ~ ' is required (the member name and its private address)') }}
{%-   endif %}
{%- endfor %}
{%- if etcd.name not in etcd.initial_cluster %}
{{- raise('pillar etcd:initial_cluster must list every member, ' ~ etcd.name ~ ' included') }}
{%- endif %}

etcd-package-installed:
  pkg.installed:
    - name: {{ etcd.package }}

etcd-config:
  file.managed:
    - name: /etc/default/etcd
    - source: salt://etcd/files/etcd.env.jinja
    - template: jinja
    - context:
        env: {{ etcd.env | json }}
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - pkg: etcd-package-installed

etcd-service-running:
  service.running:
    - name: {{ etcd.service }}
    - enable: True
    - watch:
      - file: etcd-config

{#- The package's own first start made a single-member cluster in Debian's
    default data directory; this cluster lives in data_dir. Only right after
    Salt installed the package, so nothing of anyone's is ever removed. #}
{%- if etcd.data_dir.rstrip('/') != '/var/lib/etcd/default' %}

etcd-package-default-member-removed:
  file.absent:
    - name: /var/lib/etcd/default
    - onchanges:
      - pkg: etcd-package-installed
    - require:
      - service: etcd-service-running
{%- endif %}
